"""An exported policy describes itself: it observes with the spec it was trained with, and a
board whose structure differs is refused in one line naming the policy file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_DNN, TINY_PLATFORM

from agents.export import export_policy
from agents.numpy_policy import NumpyPolicy, PolicyFileError, load_policy
from dynscale_cli import main
from envs import DynDNNEnv
from envs.observation import ObservationBuilder, ObservationSpec, ObservationSpecError
from envs.step import Request
from hwmodels.model import PlatformModel
from hwmodels.profile import load_platform
from runtime.session import make_live_controller


def write_profile(path: Path, latency_ms: list[float], cores: int = 1) -> Path:
    doc = yaml.safe_load(TINY_PLATFORM)
    doc["measured"]["latency_ms"] = latency_ms
    doc["units"][0]["cores"] = cores
    if cores > 1:
        del doc["measured"]
    path.write_text(yaml.safe_dump(doc))
    return path


def exported(tmp_path: Path, profile: Path) -> Path:
    """A (barely trained) PPO policy for ``profile``, exported."""
    from stable_baselines3 import PPO

    env = DynDNNEnv(str(profile), scenario="tiny", episode_length=16, dnn_profile=TINY_DNN)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu", policy_kwargs={"net_arch": [8]})
    npz, _ = export_policy(model, env, tmp_path / "policy")
    return npz


def test_reprofiled_board_gives_the_policy_the_observation_it_was_trained_with(tmp_path: Path) -> None:
    before = write_profile(tmp_path / "before.yaml", [10, 5, 20, 10])
    policy_file = exported(tmp_path, before)
    after = write_profile(tmp_path / "after.yaml", [30, 15, 60, 30])  # re-profiled: 3x slower
    old_model = PlatformModel(load_platform(before), TINY_DNN)
    new_model = PlatformModel(load_platform(after), TINY_DNN)
    assert ObservationSpec.for_model(new_model) != ObservationSpec.for_model(old_model)  # the scales did move

    policy = make_live_controller(str(policy_file), new_model)  # the deploy loop's way in
    assert isinstance(policy, NumpyPolicy) and policy.profile_note(new_model) is not None
    rng = np.random.default_rng(0)
    for _ in range(50):  # the same measured state, observed before and after re-profiling
        request = Request(
            float(rng.uniform(1, 100)), float(rng.uniform(1, 100)), 100.0, [float(rng.uniform(0, 2))],
            float(rng.uniform(20, 90)), [200.0], (int(rng.integers(1, 3)), 0, 1, 100.0),
            float(rng.uniform(1, 50)), float(rng.uniform(1, 50)),
        )  # fmt: skip
        trained_with = ObservationBuilder(ObservationSpec.for_model(old_model)).build(request).copy()
        np.testing.assert_array_equal(policy.observe(request), trained_with)
    rescaled = ObservationBuilder(ObservationSpec.for_model(new_model)).build(request)
    assert not np.array_equal(rescaled, trained_with)  # what a re-derived spec would have fed it


def test_a_policy_for_another_board_is_refused_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    policy_file = exported(tmp_path, write_profile(tmp_path / "tiny.yaml", [10, 5, 20, 10]))
    two_cores = PlatformModel(load_platform(write_profile(tmp_path / "two.yaml", [], cores=2)), TINY_DNN)
    with pytest.raises(PolicyFileError, match=r"policy\.npz: trained for platform 'tiny': observation field 'cores' is \[1\]"):
        load_policy(policy_file, two_cores)
    assert main(["compare", "--platform", "nano", "--agents", str(policy_file), "--seeds", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{policy_file}: trained for platform 'tiny', not 'nano'" in err


def test_a_policy_exported_before_the_slowdown_feature_observes_as_it_was_trained() -> None:
    env = DynDNNEnv("xu3", episode_length=5)
    env.reset(seed=0)
    new = ObservationBuilder(env.obs_spec)
    old_dict = env.obs_spec.to_dict()
    del old_dict["slowdown_range"]  # as policy.json files written before it existed
    old = ObservationBuilder(ObservationSpec.from_dict(old_dict))
    assert new.names[: old.size] == old.names and new.names[old.size :] == ("slowdown_a15", "slowdown_a7")
    np.testing.assert_array_equal(old.build(env.request), new.build(env.request)[: old.size])


def test_the_tick_free_feature_is_the_specs_own_and_a_policy_without_it_observes_as_before() -> None:
    """A spec with the tick's period adds ``tick_free``: how long the inference may run from its start
    (the request's time awake after the wake) before the first tick after the spec's credit (its
    mean over the phase where the request does not know it), and the spec keeps both through a
    round trip; one stored without it (a policy from before,
    or a board with no tick grid) has no such feature; a period or credit that is no number in range
    is refused naming the field."""
    env = DynDNNEnv("xu3", episode_length=5)
    env.reset(seed=0)
    assert env.obs_spec.tick_ms is None and "tick_free" not in env.observation_names  # no tick grid in xu3
    d = env.obs_spec.to_dict()
    d.update(tick_ms=4.0, credit_ms=1.5)
    ticked = ObservationBuilder(ObservationSpec.from_dict(d))
    plain = ObservationBuilder(env.obs_spec)
    assert ticked.names == (*plain.names, "tick_free")
    assert ObservationSpec.from_dict(ticked.spec.to_dict()) == ticked.spec
    unknown = dataclasses.replace(env.request, tick_phase_ms=None, awake_ms=0.5)
    assert ticked.tick_free_ms(unknown) == pytest.approx(3.0)  # no phase: the mean, half a tick after the credit
    cases = [  # (phase at the wake, time awake) -> ms from the inference's start to the first tick after the credit
        ((2.5, 0.0), 5.5),  # next tick exactly at the credit: a co-runner may take the core only after it
        ((3.0, 0.5), 4.5),  # next tick 1 ms after the wake: within the credit; the one after, 5 ms after the wake
        ((1.0, 0.5), 2.5),  # next tick 3 ms after the wake: beyond the credit
        ((2.0, 2.5), 3.5),  # awake past the credit: the first tick after the start (2 ms after the wake) is 6 ms after it
        ((0.0, 0.0), 4.0),  # woke on a tick: the next one
    ]
    for (phase, awake), free in cases:
        request = dataclasses.replace(env.request, tick_phase_ms=phase, awake_ms=awake)
        assert ticked.tick_free_ms(request) == pytest.approx(free)
        lo, hi = ticked.spec.latency_range_ms
        assert ticked.build(request)[-1] == pytest.approx(np.log(free / lo) / np.log(hi / lo), abs=1e-6)
        np.testing.assert_array_equal(ticked.build(request)[:-1], plain.build(request))
    for field, bad in (("tick_ms", 0.0), ("tick_ms", -4.0), ("tick_ms", "four"), ("credit_ms", -1.0)):
        with pytest.raises(ObservationSpecError, match=field):
            ObservationSpec.from_dict({**d, field: bad})


@pytest.mark.parametrize(
    "field, value",
    [
        ("slowdown_range", [3.0, 0.5]),
        ("slowdown_range", [0.0, 3.0]),
        ("latency_range_ms", [5.0, 5.0]),
        ("temp_range_c", [90.0, 20.0]),
    ],
)
def test_a_stored_range_that_would_scale_observations_into_nonsense_is_refused(field: str, value: list[float]) -> None:
    d = DynDNNEnv("xu3", episode_length=5).obs_spec.to_dict()
    d[field] = value
    with pytest.raises(ObservationSpecError, match=f"field '{field}' must be a pair with"):
        ObservationSpec.from_dict(d)


def test_a_policy_trained_before_a_feature_is_refused_at_export_and_a_tick_mismatch_noted(tmp_path: Path) -> None:
    """Exporting a network whose inputs are not the env's observation (trained before ``tick_free``
    joined it) is refused in one line saying so, not written for the board to refuse later; a
    policy that reads ``tick_free`` on a tick the board's profile does not have gets a note."""
    import dataclasses as dc

    from stable_baselines3 import PPO

    base = load_platform("xu3")
    ticked = dc.replace(base, interference=dc.replace(base.interference, quantum_ms=4.0, tick_hz=250))
    old_env, new_env = DynDNNEnv(base, episode_length=5), DynDNNEnv(ticked, episode_length=5)
    model = PPO("MlpPolicy", old_env, n_steps=8, batch_size=8, seed=0)
    with pytest.raises(PolicyFileError, match=r"takes 16 inputs and the env observes 17 \(tick_free added since"):
        export_policy(model, new_env, tmp_path / "old")
    ticked_model = PPO("MlpPolicy", new_env, n_steps=8, batch_size=8, seed=0)
    npz, _ = export_policy(ticked_model, new_env, tmp_path / "new")
    policy = load_policy(npz, new_env.model)
    assert "tick_free is read on a 4 ms tick, and this profile has no tick grid" in policy.profile_note(old_env.model)
    assert policy.profile_note(new_env.model) is None
