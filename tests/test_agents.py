import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_DNN, TINY_PLATFORM, trained_policy

from agents.compare import controllers_for
from agents.controllers import CONTROLLERS, GreedyController, make_controller
from agents.evaluate import compare
from agents.export import export_policy
from agents.numpy_policy import NumpyPolicy, PolicyFileError, load_policy
from envs import DynDNNEnv
from envs.step import Request
from hwmodels.model import PlatformModel
from hwmodels.profile import parse_platform


def budgets(time_ms: float, energy_mj: float) -> Request:
    """A request on an idle one-unit board with these budgets."""
    return Request(time_ms, energy_mj, 100.0, [0.0], 25.0, [200.0], (2, 0, 1, 200.0))


def test_greedy_reproduces_hand_checked_choices() -> None:
    model = PlatformModel(parse_platform(yaml.safe_load(TINY_PLATFORM), "tiny.yaml"), TINY_DNN)
    g = GreedyController(model)
    np.testing.assert_allclose(g.latency, [10, 5, 20, 10])
    np.testing.assert_allclose(g.energy, [10, 11, 20, 20])
    # 12 ms, 15 mJ: only k=1 fits; of its two, the one of lower energy (100 MHz)
    assert g.act(budgets(12, 15)) == 0
    # 12 ms, 25 mJ: k=2 at 200 MHz fits (10 ms, 20 mJ) and is more accurate
    assert g.act(budgets(12, 25)) == 3
    # 4 ms: nothing fits: the fastest configuration
    assert g.act(budgets(4, 100)) == 1
    # the mask is honoured: without action 3, k=1 at 100 MHz
    mask = np.array([True, True, True, False])
    assert g.act(budgets(12, 25), mask) == 0


@pytest.mark.parametrize("platform", ["xu3", "nano"])
def test_every_controller_returns_valid_masked_actions(platform: str) -> None:
    env = DynDNNEnv(platform, episode_length=40)
    for name in CONTROLLERS:
        ctrl = make_controller(name, env.model, env)
        env.reset(seed=1, options={"temp_c": 120.0})  # every trip active: masks bite
        assert not env.action_masks().all()
        for _ in range(40):
            mask = env.action_masks()
            a = ctrl.act(env.request, mask)
            assert 0 <= a < env.action_space.n
            if isinstance(ctrl, GreedyController) or name in ("oracle", "random", "model-predictive"):
                assert mask[a], name
            else:  # a fixed configuration falls back to its mapping's highest available frequency
                c = env.decode(a)
                same = [i for i in range(env.action_space.n) if env.decode(i).groups == c.groups and env.decode(i).unit == c.unit
                        and env.decode(i).cores == c.cores]  # fmt: skip
                assert mask[a] or not mask[same].any(), name
            env.step(a)


def test_oracle_is_never_beaten_on_the_same_noise_free_episode(tmp_path: Path) -> None:
    model_dir = trained_policy(tmp_path, "xu3")
    report, logs = compare(
        lambda: DynDNNEnv("xu3", scenario="default", episode_length=300, noise=False),
        controllers_for([str(model_dir)]),
        [1000, 1001],
        progress=False,
    )
    oracle = report.controllers["oracle"].mean_reward
    for name, m in report.controllers.items():
        assert m.mean_reward <= oracle + 1e-12, name
    # per request, too: in every state a controller visits, its choice earns no more than the oracle's would
    env = DynDNNEnv("xu3", scenario="default", episode_length=300, noise=False)
    for name, lg in logs.items():
        env.reset(seed=1000)
        for a, r in zip(lg[0].actions, lg[0].rewards):
            best = env.expected_rewards().max()
            _, reward, *_ = env.step(a)
            assert reward == pytest.approx(r) and reward <= best + 1e-12, name


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo", "dqn"])
def test_numpy_policy_matches_sb3_predict_on_10000_observations(tmp_path: Path, algo: str) -> None:
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import DQN, PPO

    env = DynDNNEnv("nano", episode_length=64)
    cls = {"ppo": PPO, "maskable_ppo": MaskablePPO, "dqn": DQN}[algo]
    kw = {"learning_starts": 0, "buffer_size": 1000} if algo == "dqn" else {"n_steps": 64, "batch_size": 64, "n_epochs": 1}
    model = cls("MlpPolicy", env, seed=1, device="cpu", policy_kwargs={"net_arch": [64, 32]}, **kw)
    model.learn(128)
    if algo != "dqn":
        # SB3 initialises the action layer with gain 0.01, so a barely trained policy has
        # near-equal logits whose argmax flips with float32 rounding (numpy vs torch BLAS).
        # A trained policy's logits are well apart; scale to that regime so the test checks
        # the exported arithmetic, not rounding ties.
        with torch.no_grad():
            model.policy.action_net.weight.mul_(100.0)
    export_policy(model, env, tmp_path / "p")
    pol = NumpyPolicy(tmp_path / "p.npz")
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 1, (10_000, env.observation_space.shape[0])).astype(np.float32)
    if algo == "maskable_ppo":
        masks = rng.random((10_000, env.action_space.n)) < 0.7
        masks[:, 0] = True
        expected = np.array([model.predict(o, deterministic=True, action_masks=m)[0] for o, m in zip(obs[:2000], masks[:2000])])
        got = np.array([pol.decide(o, m) for o, m in zip(obs[:2000], masks[:2000])])
        np.testing.assert_array_equal(got, expected)
        obs = obs[2000:]
    expected, _ = model.predict(obs, deterministic=True)
    got = np.array([pol.decide(o) for o in obs])
    assert np.mean(got == expected) == 1.0


def test_policy_file_errors(tmp_path: Path) -> None:
    run = trained_policy(tmp_path, "xu3")
    with pytest.raises(PolicyFileError, match="trained for platform 'xu3', not 'nano'"):
        load_policy(run, DynDNNEnv("nano", episode_length=8).model)
    arrays = dict(np.load(run / "policy.npz"))
    del arrays["layer1_w"]
    np.savez(tmp_path / "broken.npz", **arrays)
    (tmp_path / "broken.json").write_text((run / "policy.json").read_text())
    with pytest.raises(PolicyFileError, match="array 'layer1_w' missing"):
        NumpyPolicy(tmp_path / "broken.npz")
    meta = json.loads((run / "policy.json").read_text())
    meta["format"] = "other"
    (tmp_path / "broken.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyFileError, match="field 'format'"):
        NumpyPolicy(tmp_path / "broken.json")
    with pytest.raises(PolicyFileError, match="no such policy file"):
        NumpyPolicy(tmp_path / "nothing.npz")


def test_numpy_policy_needs_neither_torch_nor_sb3(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = trained_policy(tmp_path, "nano")
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['stable_baselines3'] = None\n"
        "import numpy as np\n"
        "from agents.numpy_policy import NumpyPolicy\n"
        f"p = NumpyPolicy({str(run / 'policy.npz')!r})\n"
        "print(p.decide(np.zeros(len(p.observation_names), dtype=np.float32)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    assert out.returncode == 0, out.stderr
    assert 0 <= int(out.stdout) < 288


def test_train_agent_smoke(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "run"
    hp = tmp_path / "ppo.yml"  # the shipped entry with a warm start small enough for a test
    hp.write_text(
        "dynscale/DynDNN-Nano-v0:\n  n_timesteps: 256\n  n_envs: 1\n  policy: MlpPolicy\n  n_steps: 64\n  batch_size: 64\n"
        "  pretrain: {teacher: model-predictive, timesteps: 300, epochs: 2, batch_size: 100}\n"
        "  env_kwargs: {scenario: tiny, objective: accuracy}\n"
    )
    res = subprocess.run(
        [
            sys.executable,
            str(root / "train_agent.py"),
            "--hyperparams",
            str(hp),
            "--objective",
            "energy",
            "--min-accuracy",
            "0.86",
            "--platform",
            "nano",
            "--scenario",
            "tiny",
            "--timesteps",
            "256",
            "--n-envs",
            "1",
            "--eval-seeds",
            "1000",
            "--out",
            str(out),
            "--json",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert set(report["controllers"]) >= {"agent:run", "oracle", "greedy"}
    for f in (
        "model.zip",
        "config.yaml",
        "policy.npz",
        "policy.json",
        "evaluation.json",
        "tradeoff.png",
        "episode.png",
        "logs/progress.csv",
    ):
        assert (out / f).is_file(), f
    # the objective the user chose is the run's, its policy's and the report's
    assert report["objective"] == "energy" and report["training"]["pretrain"]["samples"] == 300
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["objective"] == "energy" and cfg["env_kwargs"]["reward"]["min_accuracy"] == 0.86
    assert json.loads((out / "policy.json").read_text())["reward"] == cfg["env_kwargs"]["reward"]


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["compare", "--platform", "xu3", "--agents", "nowhere/policy.npz"], "nowhere/policy.npz: no such policy file"),
        (["compare", "--traces", "no-such-folder"], "--traces no-such-folder: no .csv files there"),
        (["train", "--eval-seeds", "500-501"], "--eval-seeds overlap the validation seeds 500-504"),
        (["train", "--hyperparams", "missing.yml"], "missing.yml: no such hyperparameter file"),
        (["export", "no-run-folder"], "no-run-folder/config.yaml: missing"),
    ],
)
def test_agent_commands_bad_input_is_one_line_exit_2(argv: list[str], expect: str, capsys: pytest.CaptureFixture) -> None:
    from dynscale_cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and "\n" not in err


@pytest.mark.parametrize("quiet", [False, True])
def test_compare_progress_in_a_log_is_a_few_plain_lines(quiet: bool) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "dynscale_cli", "compare", "--platform", "nano", "--episode-length", "30"]
    res = subprocess.run(cmd + (["--quiet"] if quiet else []), capture_output=True, text=True, cwd=root, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "\r" not in res.stderr  # no progress-bar frames when stderr is not a terminal
    lines = res.stderr.splitlines()
    assert lines == [] if quiet else 5 <= len(lines) <= 11 and all(line.startswith("evaluating: ") for line in lines)
    assert "fixed-min-energy" in res.stdout


def test_expected_reward_is_the_mean_reward_over_noise_draws() -> None:
    from envs.reward import RewardConfig

    rng = np.random.default_rng(3)
    reward = RewardConfig(overshoot_cap=0.3)  # a low cap: some draws are capped
    acc, lat, energy = rng.uniform(0.7, 0.9, 200), rng.uniform(1, 20, 200), rng.uniform(1, 30, 200)
    a = rng.lognormal(0, 0.2, 16)
    b = a * rng.lognormal(0, 0.2, 16)
    direct = reward(acc[:, None], lat[:, None] * a, energy[:, None] * b, 8.0, 10.0).mean(axis=1)
    assert np.allclose(reward.expected(acc, lat, energy, a, b, 8.0, 10.0), direct, rtol=0, atol=1e-12)


def test_model_predictive_beats_greedy_and_reads_only_what_the_board_observes() -> None:
    from agents.controllers import ModelPredictiveController
    from agents.evaluate import compare

    env = DynDNNEnv("xu3", episode_length=200)
    report, _ = compare(lambda: env, {n: (lambda e, n=n: make_controller(n, e.model, e)) for n in ("model-predictive", "greedy")},
                        [1000, 1001], False)  # fmt: skip
    mp, greedy = report.controllers["model-predictive"], report.controllers["greedy"]
    assert mp.mean_reward > greedy.mean_reward and mp.deadline_miss_rate < greedy.deadline_miss_rate
    ctrl = make_controller("model-predictive", env.model)  # no env: it runs live
    assert isinstance(ctrl, ModelPredictiveController)
    env.reset(seed=0)
    assert ctrl.act(env.request) == make_controller("model-predictive", env.model, env).act(env.request)
