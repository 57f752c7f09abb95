import dataclasses
import itertools
import math

import numpy as np
import pytest

from dnn.profile import load_dnn_profile
from hwmodels.config import Config, ConfigError
from hwmodels.model import PlatformModel, State
from hwmodels.profile import Measured, load_platform


@pytest.fixture(scope="module", params=["xu3", "nano"])
def model(request) -> PlatformModel:
    return PlatformModel(load_platform(request.param), load_dnn_profile())


def idle(m: PlatformModel, **kw) -> State:
    s = State.idle(m.n_units, 40.0)
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def test_action_space_size_and_round_trip() -> None:
    for name, n in (("xu3", 4 * (4 * 19 + 4 * 13)), ("nano", 4 * (4 * 15 + 12))):
        m = PlatformModel(load_platform(name), load_dnn_profile())
        assert len(m.space) == n
        for i in range(0, n, 7):
            assert m.space.encode(m.space.decode(i)) == i
    m = PlatformModel(load_platform("xu3"), load_dnn_profile())
    assert m.space.decode(0) == Config(1, "a15", 1, 200.0)
    with pytest.raises(ConfigError, match="valid: 1..4"):
        m.space.encode(Config(1, "a15", 5, 200.0))
    with pytest.raises(ConfigError, match="unknown unit 'gpu'; valid: a15, a7"):
        m.space.encode(Config(1, "gpu", 1, 200.0))


def latency(m: PlatformModel, cfg: Config, state: State) -> float:
    return m.expected(m.space.encode(cfg), state).latency_ms


def test_physics_monotone(model: PlatformModel) -> None:
    s = idle(model)
    for u in model.spec.units:
        fs = u.freqs_mhz
        for k in range(1, 5):
            lat = [latency(model, Config(k, u.name, u.cores, float(f)), s) for f in fs]
            assert all(a > b for a, b in itertools.pairwise(lat)), f"latency falls with frequency on {u.name}"
            pw = [model.expected(model.space.encode(Config(k, u.name, u.cores, float(f))), s).power_w for f in fs]
            assert all(a < b for a, b in itertools.pairwise(pw)), f"power rises with frequency on {u.name}"
        fmax = float(fs[-1])
        grp = [latency(model, Config(k, u.name, 1, fmax), s) for k in range(1, 5)]
        assert all(a < b for a, b in itertools.pairwise(grp)), "latency rises with groups"
        if u.cores > 1:
            cores = [latency(model, Config(4, u.name, c, fmax), s) for c in range(1, u.cores + 1)]
            assert all(a > b for a, b in itertools.pairwise(cores)), "latency falls with cores"
        cfg = Config(4, u.name, u.cores, fmax)
        loads = [
            latency(model, cfg, idle(model, load=np.where(np.arange(model.n_units) == model.spec.unit_index(u.name), ld, 0.0)))
            for ld in (0, 1, 2, 4)
        ]
        assert loads[0] < loads[-1] and all(a <= b for a, b in itertools.pairwise(loads)), "latency rises with background load"
        mem = idle(model, load=np.full(model.n_units, 2.0), mem=np.ones(model.n_units))
        assert latency(model, cfg, mem) > latency(model, cfg, idle(model, load=np.full(model.n_units, 2.0)))


def test_vectorised_and_scalar_agree_exactly(model: PlatformModel) -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        s = State(
            rng.uniform(0, 5, model.n_units),
            rng.uniform(0, 1, model.n_units),
            float(rng.uniform(20, 105)),
            np.array([rng.choice(u.freqs_mhz) for u in model.spec.units]),
        )
        allv = model.expected_all(s)
        t, p, e, f = (x.copy() for x in (allv.latency_ms, allv.power_w, allv.energy_mj, allv.freq_mhz))
        for i in rng.choice(len(model.space), 40, replace=False):
            o = model.expected(int(i), s)
            assert (o.latency_ms, o.power_w, o.energy_mj, o.freq_mhz) == (t[i], p[i], e[i], f[i])


def test_dvfs_switch_costs_latency(model: PlatformModel) -> None:
    u = model.spec.units[0]
    i = model.space.encode(Config(2, u.name, 1, float(u.freqs_mhz[-1])))
    same = State.idle(model.n_units, 40.0)
    same.freq_mhz = np.array([x.freqs_mhz[-1] for x in model.spec.units], dtype=float)
    other = State.idle(model.n_units, 40.0)
    other.freq_mhz = np.array([x.freqs_mhz[0] for x in model.spec.units], dtype=float)
    assert model.expected(i, other).latency_ms - model.expected(i, same).latency_ms == pytest.approx(u.switch_latency_us / 1e3)


def sustained(m: PlatformModel, cfg: Config, seconds: int) -> tuple[int | None, float]:
    """Run ``cfg`` back to back for ``seconds``; return when it got capped and the final temperature."""
    i = m.space.encode(cfg)
    temp = m.spec.thermal.start_c
    idle_others = [u for u in range(m.n_units) if u != m.spec.unit_index(cfg.unit)]
    for t in range(seconds):
        o = m.expected(i, State.idle(m.n_units, temp))
        if o.freq_mhz < cfg.freq_mhz:
            return t, temp
        rest = sum(m.unit_power(u, m.spec.units[u].freqs_mhz[0], 0, temp) for u in idle_others)
        temp = m.thermal_step(temp, o.power_w + rest, 1.0)
    return None, temp


def test_xu3_throttles_within_minutes_nano_does_not() -> None:
    xu3 = PlatformModel(load_platform("xu3"), load_dnn_profile())
    t, _ = sustained(xu3, Config(4, "a15", 4, 2000.0), 600)
    assert t is not None and 30 <= t <= 300, f"XU3 A15x4 at 2 GHz capped after {t} s"
    assert xu3.available(100.0).sum() < xu3.available(40.0).sum() == len(xu3.space)
    nano = PlatformModel(load_platform("nano"), load_dnn_profile())
    for cfg in (Config(4, "a57", 4, 1479.0), Config(4, "gpu", 1, 921.6)):
        t, temp = sustained(nano, cfg, 1800)
        assert t is None and temp < 90


def test_sample_is_seeded_and_unbiased(model: PlatformModel) -> None:
    s = idle(model)
    a = [model.sample(5, s, np.random.default_rng(3)).latency_ms for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(1)
    draws = np.array([model.sample(5, s, rng).latency_ms for _ in range(4000)])
    assert draws.mean() == pytest.approx(model.expected(5, s).latency_ms, rel=0.01)
    assert draws.std() / draws.mean() == pytest.approx(model.spec.noise.latency_cv, rel=0.1)


def test_measured_table_wins_and_keeps_state_effects() -> None:
    spec = load_platform("xu3")
    base = PlatformModel(spec, load_dnn_profile())
    n = len(base.space)
    lat = np.full(n, np.nan)
    pw = np.full(n, np.nan)
    lat[10], pw[10] = 7.5, 1.25
    m = PlatformModel(dataclasses.replace(spec, measured=Measured(lat, pw, False)), load_dnn_profile())
    s0 = State.idle(m.n_units, spec.thermal.start_c)
    assert m.expected(10, s0).latency_ms == pytest.approx(7.5)
    assert m.expected(10, s0).power_w == pytest.approx(1.25)
    assert m.expected(11, s0).latency_ms == base.expected(11, s0).latency_ms  # unmeasured: analytic
    loaded = State(np.array([4.0, 0.0]), np.zeros(2), spec.thermal.start_c, None)
    ratio = base.expected(10, loaded).latency_ms / base.expected(10, s0).latency_ms
    assert m.expected(10, loaded).latency_ms == pytest.approx(7.5 * ratio)


def test_wake_credit_shares_only_the_compute_beyond_it() -> None:
    """With ``wake_credit_ms`` C a co-runner on the DNN's core takes its share of the compute time
    beyond C only: a run shorter than C is not slowed, a longer one by (t - C) x excess / c; the
    vectorised and scalar paths still agree exactly."""
    base = load_platform("xu3")
    credit = 20.0  # ms: between the a15's shortest and longest one-core compute times
    spec = dataclasses.replace(base, interference=dataclasses.replace(base.interference, wake_credit_ms=credit))
    fair, woken = PlatformModel(base, load_dnn_profile()), PlatformModel(spec, load_dnn_profile())
    a15 = base.unit_index("a15")
    quiet = State(np.zeros(2), np.zeros(2), 40.0)
    busy = State(np.where(np.arange(2) == a15, 4.0, 0.0), np.zeros(2), 40.0)  # one co-runner per a15 core
    checked = {"short": 0, "long": 0}
    for f in base.units[a15].freqs_mhz[::3]:
        for k in range(1, 5):
            i = fair.space.encode(Config(k, "a15", 1, float(f)))
            t_idle = woken.expected(i, quiet).latency_ms
            t_fair = fair.expected(i, busy).latency_ms
            compute = t_fair - t_idle  # fair share: one co-runner doubles the compute time
            expected = t_idle + max(compute - credit, 0.0)
            assert woken.expected(i, busy).latency_ms == pytest.approx(expected, rel=1e-9)
            checked["short" if compute <= credit else "long"] += 1
    assert min(checked.values()) > 0, checked
    rng = np.random.default_rng(1)
    for _ in range(10):
        s = State(rng.uniform(0, 5, 2), rng.uniform(0, 1, 2), 40.0)
        allv = woken.expected_all(s).latency_ms.copy()
        for i in rng.choice(len(woken.space), 40, replace=False):
            assert woken.expected(int(i), s).latency_ms == allv[i]


def _assert_scalar_matches_vector(model: PlatformModel, seed: int) -> None:
    """Latency and wait of the scalar path equal the vectorised path's exactly, over random states
    of a two-unit platform with load beyond its cores."""
    rng = np.random.default_rng(seed)
    for n in range(10):  # half of them know where in a tick the process woke, some how much slower the board is
        phase = rng.uniform(0, 4) if n % 2 else None
        factor = rng.uniform(0.7, 1.6, 2) if n % 4 == 3 else None
        s = State(rng.uniform(0, 6, 2), rng.uniform(0, 1, 2), 40.0, None, rng.uniform(0, 2), phase, factor)
        o_all = model.expected_all(s)
        lat, wait = o_all.latency_ms.copy(), o_all.wait_ms.copy()
        for i in rng.choice(len(model.space), 40, replace=False):
            o = model.expected(int(i), s)
            assert o.latency_ms == lat[i] and o.wait_ms == wait[i]


def test_a_held_multi_core_run_waits_at_least_the_thread_wait() -> None:
    """With ``thread_wait_ms`` d a run on c > 1 cores waits the larger of its fair share beyond the
    credit and d times how far its last core is held (load beyond the unit's other cores and its
    first c - 1, clipped to [0, 1]); a one-core run is unchanged; the vectorised and scalar paths
    still agree exactly."""
    base = load_platform("xu3")
    d, credit = 6.0, 20.0
    it = dataclasses.replace(base.interference, wake_credit_ms=credit)
    plain = PlatformModel(dataclasses.replace(base, interference=it), load_dnn_profile())
    held = PlatformModel(dataclasses.replace(base, interference=dataclasses.replace(it, thread_wait_ms=d)), load_dnn_profile())
    a15 = base.unit_index("a15")
    checked = {"thread wait": 0, "share": 0}
    for f in base.units[a15].freqs_mhz[::4]:
        for k in range(1, 5):
            for cores in (1, 2, 4):
                i = plain.space.encode(Config(k, "a15", cores, float(f)))
                for load in (0.0, 1.0, 4.0 - cores, 4.0 - cores + 0.5, 4.0, 6.0):
                    s = State(np.where(np.arange(2) == a15, load, 0.0), np.zeros(2), 40.0)
                    share, got = plain.expected(i, s), held.expected(i, s)
                    last = min(max(load - (4 - cores) - (cores - 1), 0.0), 1.0) if cores > 1 else 0.0
                    want = max(share.wait_ms, d * last)
                    assert got.wait_ms == pytest.approx(want, rel=1e-9)
                    assert got.latency_ms == pytest.approx(share.latency_ms - share.wait_ms + want, rel=1e-9)
                    if want > share.wait_ms:
                        checked["thread wait"] += 1
                    elif share.wait_ms > 0:
                        checked["share"] += 1
    assert min(checked.values()) > 0, checked
    _assert_scalar_matches_vector(held, seed=2)


def test_a_run_waits_the_preempt_share_of_its_fair_share() -> None:
    """``preempt_share`` p scales the wait for co-runners beyond the credit (barrier included) by
    p, and leaves the thread wait of a held multi-core run as it is; the vectorised and scalar
    paths still agree exactly."""
    base = load_platform("xu3")
    it = dataclasses.replace(base.interference, wake_credit_ms=5.0, barrier_slowdown=0.5)
    full = PlatformModel(dataclasses.replace(base, interference=it), load_dnn_profile())
    part = PlatformModel(dataclasses.replace(base, interference=dataclasses.replace(it, preempt_share=0.4)), load_dnn_profile())
    a15 = base.unit_index("a15")
    for cores in (1, 2, 4):
        i = full.space.encode(Config(4, "a15", cores, 1000.0))
        s = State(np.where(np.arange(2) == a15, 4.0, 0.0), np.zeros(2), 40.0)
        whole, share = full.expected(i, s), part.expected(i, s)
        assert whole.wait_ms > 0 and share.wait_ms == pytest.approx(0.4 * whole.wait_ms, rel=1e-12)
        assert share.latency_ms == pytest.approx(whole.latency_ms - 0.6 * whole.wait_ms, rel=1e-12)
    # a held two-core run whose share is small waits the thread wait, whatever the share
    held = dataclasses.replace(it, wake_credit_ms=1000.0, thread_wait_ms=3.0)
    models = [
        PlatformModel(dataclasses.replace(base, interference=dataclasses.replace(held, preempt_share=p)), load_dnn_profile())
        for p in (1.0, 0.4)
    ]
    i = full.space.encode(Config(1, "a15", 2, 1800.0))
    s = State(np.where(np.arange(2) == a15, 4.0, 0.0), np.zeros(2), 40.0)
    assert [m.expected(i, s).wait_ms for m in models] == pytest.approx([3.0, 3.0])
    _assert_scalar_matches_vector(part, seed=3)


def test_time_awake_before_the_inference_spends_the_credit() -> None:
    """The wake-up credit counts from the wake: a state ``awake_ms`` a after it leaves the
    inference ``C - a`` (never below 0), exactly as a profile with that credit would; the scalar
    and vectorised paths agree."""
    base = load_platform("xu3")
    credit, awake = 20.0, 7.5

    def with_credit(c: float) -> PlatformModel:
        it = dataclasses.replace(base.interference, wake_credit_ms=c)
        return PlatformModel(dataclasses.replace(base, interference=it), load_dnn_profile())

    woken, left, none = with_credit(credit), with_credit(credit - awake), with_credit(0.0)
    a15 = base.unit_index("a15")
    load = np.where(np.arange(2) == a15, 4.0, 0.0)
    busy = State(load, np.zeros(2), 40.0)
    awake_busy = State(load, np.zeros(2), 40.0, None, awake)
    spent = State(load, np.zeros(2), 40.0, None, 2 * credit)
    assert np.array_equal(woken.expected_all(awake_busy).latency_ms, left.expected_all(busy).latency_ms)
    assert np.array_equal(woken.expected_all(spent).latency_ms, none.expected_all(busy).latency_ms)
    assert woken.expected_all(awake_busy).wait_ms.sum() > woken.expected_all(busy).wait_ms.sum()
    every = woken.expected_all(awake_busy)
    lat, wait = every.latency_ms.copy(), every.wait_ms.copy()
    for i in range(0, len(woken.space), 7):
        o = woken.expected(i, awake_busy)
        assert o.latency_ms == lat[i] and o.wait_ms == wait[i]


def _ticked(base, **changes) -> PlatformModel:
    """``base`` whose co-runners take 4 ms quanta on a known 250 Hz tick grid (and ``changes``)."""
    it = dataclasses.replace(base.interference, quantum_ms=4.0, tick_hz=250, **changes)
    return PlatformModel(dataclasses.replace(base, interference=it), load_dnn_profile())


def test_a_known_tick_phase_conditions_the_wait_on_the_ticks_in_the_stretch() -> None:
    """Knowing how far into a tick the process woke, a run waits only where a tick falls in the
    stretch its co-runners may take (from ``max(C, awake)`` to ``awake + compute`` after the wake): its
    wait is the fair-share rate times the tick times the ticks in it, none where none falls; its
    mean over the phase is the wait with the phase unknown (a held multi-core run's a little more:
    it waits its thread wait at any phase); the scalar and vectorised paths agree exactly."""
    base = load_platform("xu3")
    awake, share = 0.5, 0.5
    a15 = base.unit_index("a15")
    load = np.where(np.arange(2) == a15, 4.0, 0.0)  # one co-runner thread on a one-core run's core
    i = base_i = PlatformModel(base, load_dnn_profile()).space.encode(Config(1, "a15", 1, float(base.units[a15].freqs_mhz[-1])))
    compute = _ticked(base, preempt_share=1.0).expected(base_i, State(load, np.zeros(2), 40.0)).wait_ms  # no credit: all of it
    credit = compute - 2.5  # a stretch of 3 ms with 0.5 ms awake: some phases put no tick in it
    m = _ticked(base, wake_credit_ms=credit, preempt_share=share, thread_wait_ms=2.0, barrier_slowdown=0.3)
    mean = m.expected_all(State(load, np.zeros(2), 40.0, None, awake)).wait_ms.copy()
    phases = (np.arange(800) + 0.5) / 800 * 4.0
    waits = np.array([m.expected_all(State(load, np.zeros(2), 40.0, None, awake, p)).wait_ms.copy() for p in phases])
    one = m.space.cores == 1
    np.testing.assert_allclose(waits.mean(axis=0)[one], mean[one], rtol=0.01, atol=1e-9)
    # a held multi-core run waits its thread wait at any phase: a little more in mean, never less
    assert (waits.mean(axis=0)[~one] >= 0.99 * mean[~one]).all() and (waits.mean(axis=0)[~one] <= mean[~one] + 2.0).all()
    assert (waits[:, ~one & (m.space.unit_idx == a15)] >= 2.0 - 1e-9).all()  # every core of theirs is held here
    stretch = mean[i] / share  # one co-runner thread on one core: the wait is the share of the stretch
    assert stretch == pytest.approx(3.0)
    for p, w in zip(phases, waits[:, i]):
        first = 4.0 - p  # the first tick after the wake
        ticks = sum(credit < first + 4.0 * n <= credit + stretch for n in range(50))  # the credit counts from the wake
        assert w == pytest.approx(share * 4.0 * ticks, abs=1e-9)
    assert (waits[:, i] == 0).any() and (waits[:, i] > 0).any()
    # a run the credit covers waits nothing at any phase
    short = State(load, np.zeros(2), 40.0, None, 0.0, 1.0)
    covered = _ticked(base, wake_credit_ms=1000.0, preempt_share=share)
    assert not covered.expected_all(short).wait_ms.any()
    _assert_scalar_matches_vector(m, seed=4)


def test_the_ticks_are_counted_on_the_boards_own_run_from_the_wake() -> None:
    """Under a measured table (latency 3x the analytic model's) and a board slower or faster than
    the model (``latency_factor``), a one-core run beside one co-runner waits the share of one tick
    per tick that falls after ``max(C, awake)`` from the wake and before its end, ``awake + f *
    compute``, in measured ms, whatever the time awake (before or past the credit); the wait is
    stated in the model's frame (over ``f``), as ``realised_latency`` stretches it back."""
    base = load_platform("xu3")
    a15 = base.unit_index("a15")
    analytic = PlatformModel(base, load_dnn_profile())
    i = analytic.space.encode(Config(1, "a15", 1, float(base.units[a15].freqs_mhz[-1])))
    lat = np.full(len(analytic.space), np.nan)
    lat[i] = 3.0 * analytic.expected(i, State.idle(2, base.thermal.start_c)).latency_ms
    measured = dataclasses.replace(base, measured=Measured(lat, np.full(len(analytic.space), np.nan), False))
    load = np.where(np.arange(2) == a15, 4.0, 0.0)
    share = 0.5
    compute = _ticked(measured, preempt_share=1.0).expected(i, State(load, np.zeros(2), 40.0)).wait_ms  # measured ms
    for credit in (0.0, compute - 3.0, compute + 1.0):
        m = _ticked(measured, wake_credit_ms=credit, preempt_share=share)
        for awake in (0.0, 1.0, credit + 0.5):
            for f in (1.0, 0.8, 1.5):
                for phase in np.linspace(0.0, 4.0, 33):
                    s = State(load, np.zeros(2), 40.0, None, awake, float(phase), [f, 1.0])
                    first = 4.0 - phase % 4.0
                    ticks = sum(max(credit, awake) < first + 4.0 * n <= awake + f * compute for n in range(40))
                    o = m.expected(i, s)
                    assert o.wait_ms * f == pytest.approx(share * 4.0 * ticks, abs=1e-9)
                    assert m.realised_latency(o.latency_ms, o.wait_ms, 0.99, f) - m.realised_latency(
                        o.latency_ms, 0.0, 0.99, f
                    ) == pytest.approx(-share * 4.0 * ticks + 4.0 * m.wait_quanta(share * 4.0 * ticks, 0.99), abs=1e-9)
    _assert_scalar_matches_vector(_ticked(measured, wake_credit_ms=2.0, preempt_share=share), seed=5)


def test_the_thread_wait_is_in_measured_milliseconds() -> None:
    """Under a measured table (latency 3x the analytic model's here) a held two-core run whose
    share is below the thread wait waits the profile's ``thread_wait_ms`` exactly: the model
    divides it by the table's scale before its terms meet it, as it does the credit."""
    base = load_platform("xu3")
    d = 6.0
    it = dataclasses.replace(base.interference, wake_credit_ms=1000.0, thread_wait_ms=d)  # no share: only d
    analytic = PlatformModel(dataclasses.replace(base, interference=it), load_dnn_profile())
    a15 = base.unit_index("a15")
    i = analytic.space.encode(Config(2, "a15", 2, float(base.units[a15].freqs_mhz[-1])))
    quiet = State.idle(analytic.n_units, base.thermal.start_c)
    lat = np.full(len(analytic.space), np.nan)
    lat[i] = 3.0 * analytic.expected(i, quiet).latency_ms
    measured = Measured(lat, np.full(len(analytic.space), np.nan), False)
    m = PlatformModel(dataclasses.replace(base, interference=it, measured=measured), load_dnn_profile())
    held = State(np.where(np.arange(2) == a15, 4.0, 0.0), np.zeros(2), base.thermal.start_c)
    assert analytic.expected(i, held).wait_ms == pytest.approx(d, rel=1e-12)
    assert m.expected(i, held).wait_ms == pytest.approx(d, rel=1e-12)
    assert m.expected(i, held).latency_ms == pytest.approx(lat[i] + d, rel=1e-12)


def test_time_awake_is_in_measured_milliseconds() -> None:
    """Under a measured table (latency 3x the analytic model's here) time awake spends the
    profile's credit millisecond for millisecond: credit C with ``a`` ms awake is credit C - a."""
    base = load_platform("xu3")
    credit, awake = 30.0, 10.0
    a15 = base.unit_index("a15")
    analytic = PlatformModel(base, load_dnn_profile())
    i = analytic.space.encode(Config(4, "a15", 1, float(base.units[a15].freqs_mhz[-1])))
    lat = np.full(len(analytic.space), np.nan)
    lat[i] = 3.0 * analytic.expected(i, State.idle(analytic.n_units, base.thermal.start_c)).latency_ms
    measured = Measured(lat, np.full(len(analytic.space), np.nan), False)

    def with_credit(c: float) -> PlatformModel:
        it = dataclasses.replace(base.interference, wake_credit_ms=c)
        return PlatformModel(dataclasses.replace(base, interference=it, measured=measured), load_dnn_profile())

    load = np.where(np.arange(2) == a15, 4.0, 0.0)  # one co-runner on the run's core
    awake_state = State(load, np.zeros(2), base.thermal.start_c, None, awake)
    fresh_state = State(load, np.zeros(2), base.thermal.start_c)
    spent, left = with_credit(credit).expected(i, awake_state), with_credit(credit - awake).expected(i, fresh_state)
    assert 0 < spent.wait_ms == pytest.approx(left.wait_ms, rel=1e-12)
    assert spent.wait_ms > with_credit(credit).expected(i, fresh_state).wait_ms


def quantised(quantum_ms: float, credit_ms: float = 0.0) -> PlatformModel:
    base = load_platform("xu3")
    it = dataclasses.replace(base.interference, quantum_ms=quantum_ms, wake_credit_ms=credit_ms)
    return PlatformModel(dataclasses.replace(base, interference=it), load_dnn_profile())


def test_co_runners_preempt_in_whole_quanta_whose_mean_is_the_fair_share() -> None:
    """With ``quantum_ms`` q a run waits floor(w/q) or one more quantum (w: the fluid model's
    wait), one more where the tick's phase falls below frac(w/q): over phases the mean is the
    fluid latency, the median the whole number more than half the runs wait, and the scalar and
    vectorised paths give the same wait."""
    q = 4.0
    m, fluid = quantised(q), quantised(0.0)
    a15 = m.spec.unit_index("a15")
    busy = State(np.where(np.arange(2) == a15, 4.0, 0.0), np.zeros(2), 40.0)
    o_all = m.expected_all(busy)
    lat_all, wait_all = o_all.latency_ms.copy(), o_all.wait_ms.copy()
    assert np.array_equal(lat_all, fluid.expected_all(busy).latency_ms)  # the mean is unchanged
    phases = (np.arange(1000) + 0.5) / 1000
    seen_fraction = 0
    for i in np.flatnonzero(m.space.unit_idx == a15)[::5]:
        o = m.expected(int(i), busy)
        assert o.wait_ms == pytest.approx(wait_all[i]) and o.wait_ms > 0
        runs = m.realised_latency(o.latency_ms, o.wait_ms, phases)
        lo = o.latency_ms - o.wait_ms + q * np.floor(o.wait_ms / q)
        assert set(np.round((runs - lo) / q, 9)) <= {0.0, 1.0}  # whole quanta: floor or one more
        assert runs.mean() == pytest.approx(o.latency_ms, abs=q / 1000)
        assert m.typical_latency(o) == pytest.approx(np.median(runs))
        seen_fraction += 0 < np.mean(runs > lo) < 1
    assert seen_fraction > 0
    idle_o = m.expected(0, State.idle(2, 40.0))
    assert idle_o.wait_ms == 0 and m.realised_latency(idle_o.latency_ms, idle_o.wait_ms, 0.3) == idle_o.latency_ms
    o = fluid.expected(int(np.flatnonzero(m.space.unit_idx == a15)[0]), busy)
    assert fluid.realised_latency(o.latency_ms, o.wait_ms, 0.1) == fluid.typical_latency(o) == o.latency_ms
    rng = np.random.default_rng(3)
    i = int(np.flatnonzero((m.space.unit_idx == a15) & (m.space.cores == 1))[-1])
    draws = [m.sample(i, busy, rng).latency_ms for _ in range(4000)]
    assert np.mean(draws) == pytest.approx(m.expected(i, busy).latency_ms, rel=0.02)


def _longest_one_core_run_beside_four_threads(m: PlatformModel):
    """The outcome of the full network on one A15 core beside four busy threads (it waits quanta)."""
    a15 = m.spec.unit_index("a15")
    busy = State(np.where(np.arange(2) == a15, 4.0, 0.0), np.zeros(2), 40.0)
    return m.expected(int(np.flatnonzero((m.space.unit_idx == a15) & (m.space.cores == 1))[-1]), busy)


def test_a_measurement_is_compared_with_the_quanta_it_waited() -> None:
    """``explain`` takes off a measurement the quanta the model's mean wait makes certain and
    compares the rest with the model's compute; a run nearer (in ratio, at the slow-down in
    force) to one quantum more teaches nothing (``None``); without quanta, the measurement
    with the mean."""
    q = 4.0
    m = quantised(q)
    o = _longest_one_core_run_beside_four_threads(m)
    compute = o.latency_ms - o.wait_ms
    for whole in (4, 6, 9):  # estimates at which the mean wait is half a quantum more than ``whole``
        factor = (whole + 0.5) * q / o.wait_ms
        run = compute * factor + q * whole
        for jitter in (0.99, 1.01):
            measured, predicted = m.explain(o, run * jitter, factor, tolerance=0.01)
            assert predicted == pytest.approx(compute)
            assert measured == pytest.approx(run * jitter - q * whole)
            assert m.explain(o, (run + q) * jitter, factor, tolerance=0.01) is None  # a tick landed
        # near a boundary of the wait law, or jitter as large as a quantum: which quanta it waited is unknown
        assert m.explain(o, run, factor, tolerance=0.2) is None
    for bad in (0.0, -1.0, math.nan, math.inf):  # no timing: nothing learned
        assert m.explain(o, bad, 1.0, shared=True) is None
    assert m.explain(o, q, 1.0, shared=True) == (q, compute)  # a quantum's worth: no quantum, a fast board
    assert quantised(0.0).explain(o, 3.0) == (3.0, o.latency_ms)


def test_a_slower_board_stretches_its_compute_and_not_the_kernels_quanta() -> None:
    """With a slow-down factor, a run's compute and mean wait stretch, its whole quanta do not:
    every run is the compute times the factor plus whole quanta, and the mean stays the mean
    latency times the factor (the quanta's count follows the stretched mean wait)."""
    q = 4.0
    m = quantised(q)
    o = _longest_one_core_run_beside_four_threads(m)
    phases = (np.arange(1000) + 0.5) / 1000
    for factor in (0.8, 1.0, 1.6):
        runs = m.realised_latency(o.latency_ms, o.wait_ms, phases, factor)
        quanta = (runs - (o.latency_ms - o.wait_ms) * factor) / q
        assert np.allclose(quanta, np.round(quanta)) and quanta.max() >= 1
        assert runs.mean() == pytest.approx(o.latency_ms * factor, abs=q / 1000)
        assert m.typical_latency(o, factor) == pytest.approx(np.median(runs))
    assert quantised(0.0).realised_latency(2.0, 0.5, 0.3, 1.5) == 3.0  # a fluid share: all of it stretches


def test_a_run_the_wake_up_credit_covers_may_still_wait_a_quantum_where_cores_are_shared() -> None:
    """A configuration whose mean wait is 0 (its compute fits the wake-up credit) still shares its
    core with co-runners: a measurement one quantum longer is explained as that quantum, not as a
    slower board; where nothing shares its cores, the mean is what explains it."""
    q = 4.0
    m = quantised(q, credit_ms=1000.0)  # every run within the credit: mean wait 0
    a15 = m.spec.unit_index("a15")
    busy = State(np.where(np.arange(2) == a15, 4.0, 0.0), np.zeros(2), 40.0)
    i = int(np.flatnonzero((m.space.unit_idx == a15) & (m.space.cores == 1))[0])
    o = m.expected(i, busy)
    assert o.wait_ms == 0 and m.shares_cores(i, busy) and not m.shares_cores(i, State.idle(2, 40.0))
    assert m.explain(o, o.latency_ms + q, shared=True) is None
    assert m.explain(o, o.latency_ms * 1.01, shared=True) == pytest.approx((o.latency_ms * 1.01, o.latency_ms))
    assert m.explain(o, o.latency_ms + q) == (o.latency_ms + q, o.latency_ms)  # not shared: the mean


@pytest.mark.parametrize("true_factor", [0.8, 1.3])
def test_the_slowdown_estimate_learns_the_boards_compute_through_the_quanta(true_factor: float) -> None:
    """Runs beside co-runners that wait whole quanta (a quantum is the kernel's, the compute is
    the board's, ``true_factor`` x the model's) drive the online estimate to the board's factor:
    the runs a tick landed in are skipped, not read as a slower board, and the quanta are not
    stretched with the board."""
    from envs.slowdown import SlowdownEstimator
    from envs.step import correct_slowdown

    q = 4.0
    m = quantised(q)
    a15 = m.spec.unit_index("a15")
    busy = State(np.where(np.arange(2) == a15, 4.0, 0.0), np.zeros(2), 40.0)
    # the first group on four A15 cores at the top clock: a run of 3 ms waits none or one quantum
    i = int(np.flatnonzero((m.space.unit_idx == a15) & (m.space.cores == 4) & (m.space.groups == 1))[-1])
    o = m.expected(i, busy)
    assert 0 < o.wait_ms * true_factor / q < 1  # some runs wait a quantum, others none
    est = SlowdownEstimator(m.n_units, latency_cv=0.03)
    rng = np.random.default_rng(0)
    skipped = 0
    for _ in range(400):
        est.observe(busy.load)
        measured = m.realised_latency(o.latency_ms, o.wait_ms, float(rng.random()), true_factor) * rng.lognormal(0, 0.03)
        skipped += m.explain(o, measured, est.factors[a15], True) is None
        correct_slowdown(m, est, i, a15, busy, o, measured)
    assert est.factors[a15] == pytest.approx(true_factor, rel=0.05)
    assert 0 < skipped < 400
