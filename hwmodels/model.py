"""``PlatformModel``: configuration x state -> latency, power, energy, delivered frequency.

Equations (hwmodels/MODEL.md explains each term and its source). For configuration i = the DNN
at k groups on c cores of unit u at frequency f (MHz) and voltage V:

    cycles_i  = W_k * (s_u + (1 - s_u) / c) / mpc_u + O_u + L_k * (l_u + y_u * (c - 1))
    excess_i  = max(0, load_u - (N_u - c))         background threads that land on the DNN's cores
    tc_i [ms] = cycles_i / 1e3 / f                 compute on an idle unit
    w_i [ms]  = max(0, tc_i - C) * excess_i * (1 + b * (c - 1)) / c     wait for co-runners: their
                                                   mean fair share (C: the first ms a woken DNN
                                                   runs unshared; b: threads of a multi-core run
                                                   wait at barriers)
    t_i [ms]  = tc_i + w_i                         compute and its wait
              + B_k / (bw_u * min(c, 2) * 1e6) * (1 + m * sum_v mem_v * load_v)   memory, contention
              + fixed_u + L_k * layer_fixed_u + switch_u * [f != current f_u]
    P_i [W]   = (a_u + act_u * g_u) V^2 f + leak_u V exp(lam_u (T - T0_u)) + act_u * p_u * busy_i V^2 f
    busy_i    = min(N_u, c + load_u),  E_i [mJ] = P_i * t_i

with f in GHz in the power terms. ``t_i`` is the mean latency. The wait arrives in whole scheduler
quanta q (``interference.quantum_ms``, 0: a fluid share): one run waits N quanta, N = floor(w/q)
plus one with probability frac(w/q) (how many ticks of a period-q clock at a uniform phase fall in
the stretch the co-runners may preempt), so the mean is w and a run takes ``t_i - w_i + q N``
(:meth:`PlatformModel.realised_latency`; the typical run: :meth:`PlatformModel.typical_latency`).
Where the state knows how far into a tick the process woke (``State.tick_phase_ms``, on a profile
with a tick grid), the stretch beyond the credit (from ``max(C, awake)`` to ``awake + tc_i`` after
the wake: the credit counts from it) is not a uniform draw of the grid: the ticks that fall in it
are known, n_i, and its length ``max(0, tc_i - C')`` in ``w_i`` is ``tick * n_i`` (no wait where no
tick falls in it; a held multi-core run still waits its thread wait at least); so its mean over a
uniform phase is ``w_i`` (a little more where the thread wait binds at some phases). On a board
slower by ``f`` than the model (``State.latency_factor``) the run ends at ``awake + f tc_i``
among the ticks, and the quanta are the kernel's (the wait stated is ``tick * n_i / f``, which
:meth:`PlatformModel.realised_latency` stretches back by ``f``); there the mean over the phase is
the share of ``f tc_i - C'``, where the wait with no phase known stretches the credit too,
``f (tc_i - C')``: the two agree only at ``f = 1``.
Above a thermal trip the unit's frequency is capped: the
configuration runs at the capped frequency and voltage. Measured tables in the profile, where
present, replace the idle-board values and keep the model's relative effect of the state.

The vectorised path (all configurations) and the scalar path (one) evaluate the same
expressions in the same order, so they agree exactly; state-only factors are computed once.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dnn.profile import DNNProfile
from hwmodels.config import ConfigSpace
from hwmodels.profile import PlatformSpec

#: the most background threads per core the model is meant for: beyond it a unit is a queue, not
#: a co-runner, and the fair-share term stops describing it (traces and load schedules beyond it
#: are refused)
MAX_LOAD_THREADS_PER_CORE = 4.0


@dataclass
class State:
    """What the platform is doing when a request arrives.

    :param load: busy background threads per unit (fractional allowed; GPU: time-share demand)
    :param mem: memory intensity 0..1 of each unit's background load
    :param temp_c: die temperature
    :param freq_mhz: current frequency per unit (``None``: every configuration's own, no switch)
    :param awake_ms: how long the DNN's process has run since it woke for this request when the
        inference starts (observing, deciding, applying; CPU time, not time it waited): the
        wake-up credit counts from the wake, so this much of it is spent before the inference (0: none)
    :param tick_phase_ms: how far into a scheduler tick the process woke, in [0, tick period) ms
        (``None``: not known; the wait is then its mean over the tick's phase). Known, a
        one-quantum wait is possible only where a tick falls in the stretch of the run beyond the
        credit, so the wait is conditioned on it (:meth:`PlatformModel.expected`; the model's
        ``tick_ms`` must be > 0)
    :param latency_factor: the board's latency over the model's per unit (the online slow-down
        estimate, or the env's true model error; ``None``: 1): with the tick's phase known, a run
        on a board slower by ``f`` ends ``f`` times its compute after its start among the ticks.
        The wait stated is then in the model's frame (the quanta over ``f``), as
        :meth:`PlatformModel.realised_latency` stretches it back by ``f``; unused otherwise
    """

    load: np.ndarray
    mem: np.ndarray
    temp_c: float
    freq_mhz: np.ndarray | None = None
    awake_ms: float = 0.0
    tick_phase_ms: float | None = None
    latency_factor: Sequence[float] | None = None

    @classmethod
    def idle(cls, n_units: int, temp_c: float = 25.0) -> State:
        """An idle board at ``temp_c``, no DVFS switch charged."""
        return cls(np.zeros(n_units), np.zeros(n_units), float(temp_c), None)


@dataclass
class Outcome:
    """Model outputs for one configuration (scalars) or all of them (arrays in action order)."""

    latency_ms: np.ndarray | float
    power_w: np.ndarray | float
    energy_mj: np.ndarray | float
    freq_mhz: np.ndarray | float
    #: the mean wait for co-runners included in ``latency_ms`` (``w_i``; whole quanta in a real run)
    wait_ms: np.ndarray | float = 0.0


class PlatformModel:
    """The analytic (or measured) performance and power model of one platform running one DNN.

    :param spec: the platform profile
    :param dnn: the DNN profile (work per group count)
    """

    def __init__(self, spec: PlatformSpec, dnn: DNNProfile) -> None:
        self.spec = spec
        self.dnn = dnn
        self.space = ConfigSpace(spec, dnn.max_groups)
        sp = self.space
        units = spec.units
        self.n_units = len(units)
        u = sp.unit_idx
        k = sp.groups - 1

        def per_unit(fn) -> np.ndarray:
            return np.array([fn(x) for x in units], dtype=np.float64)[u]

        W, B, L = dnn.column("macs")[k], (dnn.column("weight_bytes") + dnn.column("activation_bytes"))[k], dnn.column("layers")[k]
        c = sp.cores.astype(np.float64)
        s = per_unit(lambda x: x.perf.serial_fraction)
        cycles = (
            W * (s + (1.0 - s) / c) / per_unit(lambda x: x.perf.macs_per_cycle)
            + per_unit(lambda x: x.perf.overhead_mcycles) * 1e6
            + L * (per_unit(lambda x: x.perf.layer_overhead_kcycles) + per_unit(lambda x: x.perf.sync_kcycles) * (c - 1.0)) * 1e3
        )
        self._A = cycles / 1e3  # idle compute ms = A * c / (c * f_MHz)
        # the fair-share wait's slope per excess thread: the share of it a run waits (preempt_share),
        # stretched by the barrier on c > 1 cores
        self._share_slope = spec.interference.preempt_share * (1.0 + spec.interference.barrier_slowdown * (c - 1.0))
        self._c = c
        self._free = per_unit(lambda x: float(x.cores)) - c
        self._ncores = per_unit(lambda x: float(x.cores))
        self._tmem = B / (per_unit(lambda x: x.perf.mem_bw_gbps) * np.minimum(c, 2.0) * 1e6)
        self._fixed = per_unit(lambda x: x.perf.overhead_fixed_ms) + L * per_unit(lambda x: x.perf.layer_fixed_us) / 1e3
        self._switch = per_unit(lambda x: x.switch_latency_us / 1e3)
        self._k_idle = per_unit(lambda x: x.power.idle_dyn + x.power.activity * x.power.uncore)
        self._k_core = per_unit(lambda x: x.power.activity * x.power.per_core)
        self._k_leak = per_unit(lambda x: x.power.leak)
        self._unit = u
        self._f = sp.freq_mhz.copy()
        self._v = sp.volt.copy()
        self._freq_idx = sp.freq_idx
        offsets = np.cumsum([0] + [len(x.freqs_mhz) for x in units])[:-1]
        self._flat_f = np.concatenate([x.freqs_mhz for x in units])
        self._flat_v = np.concatenate([x.volts for x in units])
        self._offset = offsets[u]
        self._max_idx = np.array([len(x.freqs_mhz) - 1 for x in units])
        self._py_max_idx = tuple(self._max_idx.tolist())
        # (temperature, unit, highest DVFS index allowed at or above it), resolved once
        self._trips = []
        for t in spec.thermal.trips:
            ui = spec.unit_index(t.unit)
            self._trips.append(
                (t.temp_c, ui, max(0, int(np.searchsorted(units[ui].freqs_mhz, t.max_freq_mhz, side="right")) - 1))
            )
        self._ltc = [(x.power.leak_temp_coeff, x.power.leak_ref_c) for x in units]
        self._unit_tables = [(x.freqs_mhz.tolist(), x.volts.tolist(), x.cores, x.power) for x in units]
        self._mem_slow = spec.interference.mem_slowdown
        #: co-runners preempt the DNN in quanta this long (0: a fluid share)
        self.quantum_ms = spec.interference.quantum_ms
        #: the period of the scheduler's tick grid where the profile found one and co-runners take
        #: quanta (0: none; a state's ``tick_phase_ms`` is then ignored)
        it = spec.interference
        self.tick_ms = 1000.0 / it.tick_hz if it.tick_hz > 0 and self.quantum_ms > 0 else 0.0
        self._cf, self._v2f, self._kl_v = self._freq_terms(self._f, self._v)
        self._buf = {name: np.empty(len(sp)) for name in ("t", "p", "e", "x", "y", "s", "h", "c")}
        # measured tables win over the analytic idle-board values (ratio kept per configuration)
        self._lat_scale = self._pow_scale = None
        self._credit = np.full(len(sp), spec.interference.wake_credit_ms)
        # the least mean wait of a multi-core run whose every core is held (0 on one core)
        self._thread_wait = np.where(c > 1.0, spec.interference.thread_wait_ms, 0.0)
        if spec.measured is not None:
            self._apply_measured()
            # the credit and the thread wait are in measured ms; the model's terms meet them
            # before the measured table's scale is applied, so they are divided by that scale
            self._credit /= self._lat_scale
            self._thread_wait /= self._lat_scale
        # measured ms of time awake -> the model's ms the credit is in
        self._per_ms = np.ones(len(sp)) if self._lat_scale is None else 1.0 / self._lat_scale
        self._tick = self._per_ms * self.tick_ms  # the tick in the model's ms
        # python lists for the scalar path: indexing a list is far cheaper than a numpy scalar
        self._py = {
            n: getattr(self, n).tolist()
            for n in (
                "_A",
                "_credit",
                "_per_ms",
                "_tick",
                "_thread_wait",
                "_share_slope",
                "_c",
                "_free",
                "_ncores",
                "_tmem",
                "_fixed",
                "_switch",
                "_k_idle",
                "_k_core",
                "_k_leak",
                "_f",
                "_cf",
                "_v2f",
                "_kl_v",
            )
        }
        self._py_unit = u.tolist()
        self._py_fidx = self._freq_idx.tolist()
        self._py_off = self._offset.tolist()
        self._py_flat_f = self._flat_f.tolist()
        self._py_flat_v = self._flat_v.tolist()
        self._py_scales = (self._lat_scale.tolist(), self._pow_scale.tolist()) if self._lat_scale is not None else (None, None)

    # ------------------------------------------------------------------ state-only factors

    def freq_caps_idx(self, temp_c: float) -> list[int]:
        """Highest allowed DVFS index per unit at ``temp_c`` (trip points at or below it apply)."""
        caps = list(self._py_max_idx)
        for t, ui, cap in self._trips:
            if temp_c >= t and cap < caps[ui]:
                caps[ui] = cap
        return caps

    def available(self, temp_c: float, out: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of configurations whose frequency is allowed at ``temp_c``."""
        caps = np.asarray(self.freq_caps_idx(temp_c))
        return np.less_equal(self._freq_idx, caps[self._unit], out=out)

    def _leak_factors(self, temp_c: float) -> list[float]:
        return [math.exp(lam * (temp_c - t0)) for lam, t0 in self._ltc]

    def _mem_factor(self, state: State) -> float:
        total = 0.0
        for m, ld in zip(state.mem.tolist(), state.load.tolist()):
            total += m * ld
        return 1.0 + self._mem_slow * total

    def _freq_terms(self, f: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._c * f, v * v * (f / 1e3), self._k_leak * v

    # ------------------------------------------------------------------ vectorised

    def expected_all(self, state: State) -> Outcome:
        """Noise-free outcome of every configuration in ``state``, arrays in action order.

        The arrays are buffers owned by the model and overwritten by the next call: copy them
        to keep them.
        """
        caps = self.freq_caps_idx(state.temp_c)
        if tuple(caps) == self._py_max_idx:
            f, cf, v2f, klv = self._f, self._cf, self._v2f, self._kl_v
        else:
            idx = np.minimum(self._freq_idx, np.asarray(caps)[self._unit])
            f = self._flat_f[self._offset + idx]
            cf, v2f, klv = self._freq_terms(f, self._flat_v[self._offset + idx])
        b = self._buf
        lf = state.load[self._unit]
        excess = np.maximum(lf - self._free, 0.0, out=b["x"])
        # how far the last of a multi-core run's cores is held, in [0, 1]
        held = np.subtract(excess, self._c, out=b["h"])
        held += 1.0
        np.clip(held, 0.0, 1.0, out=held)
        held *= self._thread_wait
        excess *= self._share_slope
        t = np.divide(self._A, cf, out=b["t"])
        t *= self._c
        credit = self._credit
        if state.awake_ms > 0:  # the credit left when the inference starts
            spent = np.multiply(self._per_ms, state.awake_ms, out=b["c"])
            credit = np.subtract(credit, spent, out=spent)
            np.maximum(credit, 0.0, out=credit)
        shared = np.subtract(t, credit, out=b["s"])
        np.maximum(shared, 0.0, out=shared)
        if state.tick_phase_ms is not None and self.tick_ms > 0:  # the stretch's length in the ticks that fall in it
            factor = 1.0 if state.latency_factor is None else np.asarray(state.latency_factor, dtype=np.float64)[self._unit]
            awake = self._per_ms * state.awake_ms
            first = self._per_ms * next_tick_ms(state.tick_phase_ms, self.tick_ms)
            exposed = np.maximum(self._credit, awake)  # from the wake: a co-runner may take the core from here
            ticks = np.floor((awake + t * factor - first) / self._tick) - np.floor((exposed - first) / self._tick)
            np.maximum(ticks, 0.0, out=ticks)
            ticks *= self._tick
            np.divide(ticks, factor, out=shared)
        shared *= excess
        shared /= self._c
        np.maximum(shared, held, out=shared)
        t += shared
        wait = shared  # the buffer holds the wait from here on (scaled below with t)
        t += self._tmem * self._mem_factor(state)
        t += self._fixed
        if state.freq_mhz is not None:
            t += self._switch * (f != state.freq_mhz[self._unit])
        busy = np.minimum(self._ncores, np.add(self._c, lf, out=b["y"]), out=b["y"])
        p = b["p"]
        np.multiply(self._k_idle, v2f, out=p)
        p += klv * np.asarray(self._leak_factors(state.temp_c))[self._unit]
        p += self._k_core * busy * v2f
        if self._lat_scale is not None:
            t *= self._lat_scale
            p *= self._pow_scale
            wait *= self._lat_scale
        np.multiply(p, t, out=b["e"])
        return Outcome(t, p, b["e"], f, wait)

    def idle_table(self, temp_c: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(latency_ms, energy_mj) of every configuration on the idle board, no DVFS switch: the
        table a look-up-table manager is built from (copies; default temperature: the
        profile's ``thermal.start_c``)."""
        o = self.expected_all(State.idle(self.n_units, self.spec.thermal.start_c if temp_c is None else temp_c))
        return o.latency_ms.copy(), o.energy_mj.copy()

    def fastest_action(self, groups: int) -> int:
        """The configuration with ``groups`` groups that is fastest on the idle board."""
        latency, _ = self.idle_table()
        candidates = np.flatnonzero(self.space.groups == groups)
        return int(candidates[np.argmin(latency[candidates])])

    # ------------------------------------------------------------------ scalar

    def expected(self, index: int, state: State) -> Outcome:
        """Noise-free outcome of configuration ``index``; equals ``expected_all(state)[index]`` exactly."""
        py = self._py
        i = index
        u = self._py_unit[i]
        caps = self.freq_caps_idx(state.temp_c)
        fi = self._py_fidx[i]
        if fi <= caps[u]:
            f, cf, v2f, klv = py["_f"][i], py["_cf"][i], py["_v2f"][i], py["_kl_v"][i]
        else:
            j = self._py_off[i] + caps[u]
            f = self._py_flat_f[j]
            v = self._py_flat_v[j]
            cf, v2f, klv = py["_c"][i] * f, v * v * (f / 1e3), py["_k_leak"][i] * v
        lf = float(state.load[u])
        c = py["_c"][i]
        excess = max(lf - py["_free"][i], 0.0)
        held = min(max(excess - c + 1.0, 0.0), 1.0) * py["_thread_wait"][i]
        t = py["_A"][i] / cf * c
        credit = py["_credit"][i]
        if state.awake_ms > 0:  # the credit left when the inference starts
            credit = max(credit - py["_per_ms"][i] * state.awake_ms, 0.0)
        shared = max(t - credit, 0.0)
        if state.tick_phase_ms is not None and self.tick_ms > 0:  # the stretch's length in the ticks that fall in it
            factor = 1.0 if state.latency_factor is None else float(state.latency_factor[u])
            per_ms, tick = py["_per_ms"][i], py["_tick"][i]
            awake = per_ms * state.awake_ms
            first = per_ms * next_tick_ms(state.tick_phase_ms, self.tick_ms)
            exposed = max(py["_credit"][i], awake)  # from the wake: a co-runner may take the core from here
            ticks = math.floor((awake + t * factor - first) / tick) - math.floor((exposed - first) / tick)
            shared = max(ticks, 0) * tick / factor
        wait = max(shared * (excess * py["_share_slope"][i]) / c, held)
        t += wait
        t += py["_tmem"][i] * self._mem_factor(state)
        t += py["_fixed"][i]
        if state.freq_mhz is not None:
            t += py["_switch"][i] * float(f != float(state.freq_mhz[u]))
        busy = min(py["_ncores"][i], c + lf)
        p = py["_k_idle"][i] * v2f
        p += klv * self._leak_factors(state.temp_c)[u]
        p += py["_k_core"][i] * busy * v2f
        lat_s, pow_s = self._py_scales
        if lat_s is not None:
            t *= lat_s[i]
            p *= pow_s[i]
            wait *= lat_s[i]
        return Outcome(t, p, p * t, f, wait)

    def sample(self, index: int, state: State, rng: np.random.Generator) -> Outcome:
        """One noisy run of configuration ``index``: its wait in whole quanta at a uniform phase,
        then log-normal jitter with the profile's CVs, mean 1."""
        o = self.expected(index, state)
        n = self.spec.noise
        lat = o.latency_ms
        if self.quantum_ms > 0:  # a fluid profile draws as it always did
            lat = self.realised_latency(lat, o.wait_ms, float(rng.random()))
        lat *= _lognormal(rng, n.latency_cv)
        pw = o.power_w * _lognormal(rng, n.power_cv)
        return Outcome(lat, pw, lat * pw, o.freq_mhz, o.wait_ms)

    # ------------------------------------------------------------------ preemption quanta

    def wait_quanta(self, wait_ms, phase):
        """Quanta a run waits for co-runners: ``floor(w/q)`` plus one where ``phase`` (uniform
        in [0, 1): where the scheduler's tick falls relative to the request; where the state knew
        that, ``w`` is conditioned on it and the draw is whether a co-runner takes the tick) is
        below ``frac(w/q)``.

        :param wait_ms: the mean wait (``Outcome.wait_ms``), a float or an array of configurations
        :param phase: a float, or an array broadcasting against ``wait_ms``
        """
        if isinstance(wait_ms, float) and isinstance(phase, float):  # the env's step: no numpy scalars
            n = wait_ms / self.quantum_ms
            whole = math.floor(n)
            return whole + (phase < n - whole)
        n = np.asarray(wait_ms) / self.quantum_ms
        whole = np.floor(n)
        return whole + (phase < n - whole)

    def realised_latency(self, latency_ms, wait_ms, phase, factor=1.0):
        """The noise-free latency of a run whose tick falls at ``phase`` (see :meth:`wait_quanta`):
        the mean less the mean wait plus the whole quanta waited; the mean itself under a fluid
        share. Arguments broadcast (configurations ``(n, 1)`` against phases ``(d,)``).

        :param latency_ms: the mean latency (``Outcome.latency_ms``)
        :param wait_ms: its mean wait for co-runners (``Outcome.wait_ms``)
        :param phase: uniform in [0, 1)
        :param factor: the board's latency over the model's (an online slow-down estimate, or the
            env's model error): the compute and the mean wait stretch by it, the quanta do not (a
            quantum is the kernel's tick, the same on a slower board; measured on the 2-CPU dev
            host beside two busy threads: a k = 4 run that waited took 4.0-4.1 ms more than one
            that did not at estimates from 0.7 to 0.9, 4.1-4.5 ms beside a memory streamer;
            ``python docs/live/quanta_split.py --by-slowdown LOG``, README)
        """
        if self.quantum_ms <= 0:
            return latency_ms * factor
        wait = wait_ms * factor
        return latency_ms * factor - wait + self.quantum_ms * self.wait_quanta(wait, phase)

    def typical_latency(self, o: Outcome, factor: float = 1.0):
        """The median noise-free latency: what most runs take (the mean where the share is fluid;
        with quanta, the whole number of them that more than half of the runs wait).

        :param factor: the board's latency over the model's (:meth:`realised_latency`)
        """
        return self.realised_latency(o.latency_ms, o.wait_ms, 0.5, factor)

    def shares_cores(self, index: int, state: State) -> bool:
        """Whether background load in ``state`` lands on configuration ``index``'s cores (it
        outnumbers the unit's cores the configuration leaves free): a run there may be preempted."""
        return float(state.load[self._py_unit[index]]) > self._py["_free"][index]

    def explain(
        self, o: Outcome, measured_ms: float, factor: float = 1.0, shared: bool = False, tolerance: float = 0.05
    ) -> tuple[float, float] | None:
        """What of a measurement a slow-down estimate should learn from: (the measured latency less
        the quanta the run waited, the model's latency less its mean wait), or ``None`` where it
        cannot say: a tick landed in the run (it waited one quantum more than the whole ones of
        its mean wait), which quanta it waited is ambiguous, or no count fits. A quantum's length
        is the kernel's, and a run co-runners held part of a quantum (threads of a multi-core run)
        says nothing of the board's speed. Without quanta: (the measurement, the mean latency).

        A measurement is ``compute x f + q N`` for a board slower by ``f`` that waited ``N``
        quanta; the model's wait law ties the two (at ``f`` a run waits ``floor(w f / q)``
        quanta, or one more: :meth:`realised_latency`). Of the (f, N) that law allows, the one
        with ``f`` nearest the estimate in force, ``factor``, in ratio; so a long run that waited
        five quanta is not read as a faster board that waited seven. It teaches only where ``N``
        is the whole quanta for every measurement within ``tolerance`` of this one (the jitter
        of one run), so runs near a boundary of the wait law do not bias the estimate either way.

        :param o: the configuration's outcome at the observed state (scalar)
        :param measured_ms: the measured latency
        :param factor: the slow-down estimate in force
        :param shared: co-runners share the configuration's cores (:meth:`shares_cores`): a run may
            wait one quantum more than the model's mean wait says, even a run the wake-up credit
            covers (measured: beside two busy threads 9-15% of k = 1 runs, 1 ms long, waited 4 ms;
            ``python docs/live/quanta_split.py runs/live-onnx-a/*.jsonl``)
        :param tolerance: the share by which one run's jitter may move its latency
        """
        if self.quantum_ms <= 0 or (o.wait_ms <= 0 and not shared):
            return measured_ms, float(o.latency_ms)
        q, compute, wait = self.quantum_ms, float(o.latency_ms - o.wait_ms), float(o.wait_ms)
        if not (math.isfinite(measured_ms) and measured_ms > 0 and compute > 0):
            return None
        n, distance = None, math.inf
        for count in range(int(measured_ms // q) + 1):
            f = (measured_ms - q * count) / compute
            if f <= 0:
                break
            whole, off = math.floor(wait * f / q), abs(math.log(f / factor))
            if (count == whole or (count == whole + 1 and (shared or wait * f / q != whole))) and off < distance:
                n, distance = count, off
        if n is None:
            return None
        lo, hi = ((measured_ms * (1 + s) - q * n) / compute for s in (-tolerance, tolerance))
        if not (lo > 0 and math.floor(wait * lo / q) == n == math.floor(wait * hi / q)):
            return None  # a tick landed, or it may have: the run's length is the kernel's, not the board's
        return measured_ms - q * n, compute

    # ------------------------------------------------------------------ board-level power and heat

    def unit_power(self, unit: int, freq_mhz: float, busy: float, temp_c: float, activity: float = 1.0) -> float:
        """Rail power of ``unit`` at ``freq_mhz`` with ``busy`` busy cores and no DNN running.

        :param activity: dynamic power of the busy threads relative to the calibration workload
            (1.0: background load and the published calibration points)
        """
        freqs, volts, cores, pw = self._unit_tables[unit]
        fi = min(bisect.bisect_left(freqs, freq_mhz), len(freqs) - 1)
        v = volts[fi]
        v2f = v * v * (freqs[fi] / 1e3)
        active = activity * (pw.uncore * (busy > 0) + pw.per_core * (min(cores, busy)))
        lam, t0 = self._ltc[unit]
        return (pw.idle_dyn + active) * v2f + pw.leak * v * math.exp(lam * (temp_c - t0))

    def thermal_step(self, temp_c: float, power_w: float, dt_s: float) -> float:
        """Die temperature after ``dt_s`` seconds at mean total power ``power_w`` (exact RC solution)."""
        th = self.spec.thermal
        steady = th.ambient_c + th.r_th_c_per_w * (power_w + th.other_rails_w)
        return steady + (temp_c - steady) * math.exp(-dt_s / th.tau_s)

    # ------------------------------------------------------------------ measured tables

    def _apply_measured(self) -> None:
        m = self.spec.measured
        n = len(self.space)
        if len(m.latency_ms) != n:
            from hwmodels.profile import PlatformProfileError

            raise PlatformProfileError(
                f"{self.spec.path}: field 'measured.latency_ms' has {len(m.latency_ms)} entries, the platform has {n} configurations"
            )
        idle = self.expected_all(State.idle(self.n_units, self.spec.thermal.start_c))
        t0, p0 = idle.latency_ms.copy(), idle.power_w.copy()
        self._lat_scale = np.where(np.isfinite(m.latency_ms), m.latency_ms / t0, 1.0)
        self._pow_scale = np.where(np.isfinite(m.power_w), m.power_w / p0, 1.0)


def next_tick_ms(tick_phase_ms: float, tick_ms: float) -> float:
    """Time from a wake ``tick_phase_ms`` into a tick of period ``tick_ms`` to the next tick, in
    [0, tick_ms] (0 only by rounding): where a run's exposure to co-runners is counted from, in the
    model and in a policy's ``tick_free``."""
    return tick_ms - float(tick_phase_ms) % tick_ms


def lognormal_factors(z: np.ndarray | float, cv: float) -> np.ndarray | float:
    """Mean-one log-normal factors of coefficient of variation ``cv`` from standard normals
    ``z``: the model's law of run-to-run jitter (latency and power alike)."""
    sigma = math.sqrt(math.log1p(cv * cv))
    return np.exp(sigma * np.asarray(z) - 0.5 * sigma * sigma)


def _lognormal(rng: np.random.Generator, cv: float) -> float:
    return 1.0 if cv <= 0 else float(lognormal_factors(rng.standard_normal(), cv))
