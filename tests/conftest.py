"""Fixtures shared by the test suite: tiny datasets and tiny models built on the spot."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from dnn.data import CLASSES
from dnn.profile import DNNProfile, GroupCost


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 32x32 RGB images with labels cycling through the 10 classes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n, dtype=np.int64) % len(CLASSES)


def write_python_batches(root: Path, per_batch: int = 20, test: int = 20) -> Path:
    """The official ``cifar-10-batches-py`` layout with tiny batches."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        x, y = make_images(test if name == "test_batch" else per_batch, seed=i)
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": flat, b"labels": y.tolist()}, f)
    return d


def write_class_folders(root: Path, per_class: int = 2, suffix: str = ".png") -> Path:
    """``train/<class>/NNNN.png`` and ``test/<class>/...``."""
    from PIL import Image

    for split, seed in (("train", 0), ("test", 1)):
        x, _ = make_images(per_class * len(CLASSES), seed)
        for c, cls in enumerate(CLASSES):
            d = root / split / cls
            d.mkdir(parents=True)
            for j in range(per_class):
                Image.fromarray(x[c * per_class + j]).save(d / f"{j:04d}{suffix}")
    return root


@pytest.fixture
def batches_dir(tmp_path: Path) -> Path:
    return write_python_batches(tmp_path / "data")


@pytest.fixture
def folders_dir(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "data")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's decode cache from tests."""
    monkeypatch.setenv("DYNSCALE_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------- fake boards (sysfs trees)


A7_KHZ = [f * 1000 for f in range(200, 1401, 100)]


A15_KHZ = [f * 1000 for f in range(200, 2001, 100)]


STAT_BEFORE = """cpu  400 0 200 1000 0 0 0 0 0 0
cpu0 100 0 50 250 0 0 0 0 0 0
cpu1 100 0 50 250 0 0 0 0 0 0
intr 12345
"""


STAT_AFTER = """cpu  600 0 300 1300 0 0 0 0 0 0
cpu0 180 0 70 250 0 0 0 0 0 0
cpu1 120 0 80 300 20 0 0 0 0 0
intr 12999
"""


def fake_xu3(root: Path) -> Path:
    """An XU3-shaped sysfs: A7 cpu0-3 and A15 cpu4-7, each cluster one cpufreq policy."""
    for cluster, freqs, gov in (((0, 1, 2, 3), A7_KHZ, "ondemand"), ((4, 5, 6, 7), A15_KHZ, "performance")):
        for cpu in cluster:
            d = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
            d.mkdir(parents=True)
            files = {
                "related_cpus": " ".join(map(str, cluster)),
                "scaling_available_frequencies": " ".join(map(str, freqs)),
                "scaling_available_governors": "ondemand performance userspace powersave",
                "scaling_governor": gov,
                "scaling_setspeed": "<unsupported>",
                "scaling_cur_freq": str(freqs[-1]),
            }
            for name, text in files.items():
                (d / name).write_text(text + "\n")
    return root


def add_xu3_sensors(root: Path, bus: str = "3") -> None:
    """INA231 sensors under an I2C bus whose number varies between kernels, and thermal zones."""
    for addr, watts in (("0040", "1.234"), ("0041", "0.051"), ("0044", "0.102"), ("0045", "0.088")):
        d = root / f"sys/bus/i2c/drivers/INA231/{bus}-{addr}"
        d.mkdir(parents=True)
        (d / "enable").write_text("0\n")
        (d / "sensor_W").write_text(watts + "\n")
    for i, (kind, milli) in enumerate((("cpu-thermal", 52000), ("gpu-thermal", 48000))):
        z = root / f"sys/class/thermal/thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(f"{milli}\n")


def fake_nano(root: Path) -> Path:
    """A Nano-shaped sysfs: A57 cpu0-3, GPU devfreq, INA3221 rails named by rail_name files."""
    khz = [
        102000,
        204000,
        307200,
        403200,
        518400,
        614400,
        710400,
        825600,
        921600,
        1036800,
        1132800,
        1224000,
        1326000,
        1428000,
        1479000,
    ]
    for cpu in range(4):
        d = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        d.mkdir(parents=True)
        for name, text in {
            "related_cpus": "0 1 2 3",
            "scaling_available_frequencies": " ".join(map(str, khz)),
            "scaling_available_governors": "schedutil userspace",
            "scaling_governor": "schedutil",
            "scaling_setspeed": "<unsupported>",
            "scaling_cur_freq": "1479000",
        }.items():
            (d / name).write_text(text + "\n")
    g = root / "sys/devices/gpu.0/devfreq/57000000.gpu"
    g.mkdir(parents=True)
    hz = [int(76.8e6 * i) for i in range(1, 13)]
    for name, text in {
        "available_frequencies": " ".join(map(str, hz)),
        "min_freq": str(hz[0]),
        "max_freq": str(hz[-1]),
        "cur_freq": str(hz[-1]),
    }.items():
        (g / name).write_text(text + "\n")
    iio = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    iio.mkdir(parents=True)
    for n, (label, mw) in enumerate((("POM_5V_IN", 2003), ("POM_5V_GPU", 0), ("POM_5V_CPU", 320))):
        (iio / f"rail_name_{n}").write_text(label + "\n")
        (iio / f"in_power{n}_input").write_text(f"{mw}\n")
    return root


def xu3_with_stat(root: Path) -> Path:
    """A fake XU3 with INA231 sensors, thermal zones and a /proc/stat where cpu4 is busy."""
    fake_xu3(root)
    add_xu3_sensors(root)
    (root / "proc").mkdir()
    # cpu4 busy, the other A15 cores idle
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"] + [f"cpu{c} {500 if c == 4 else 0} 0 0 1000 0 0 0 0 0 0" for c in range(8)]
    (root / "proc/stat").write_text("\n".join(lines) + "\n")
    (root / "sys/devices/system/cpu/online").write_text("0-7\n")
    return root


def fake_one_cpu_board(root: Path, governor: str = "ondemand") -> Path:
    """This machine's cpu0 with a fake two-step cpufreq policy (so DVFS writes land in files)."""
    d = root / "sys/devices/system/cpu/cpu0/cpufreq"
    d.mkdir(parents=True)
    for name, text in {
        "related_cpus": "0",
        "scaling_available_frequencies": "1000000 2000000",
        "scaling_available_governors": "ondemand userspace",
        "scaling_governor": governor,
        "scaling_setspeed": "<unsupported>",
        "scaling_cur_freq": "2000000",
    }.items():
        (d / name).write_text(text + "\n")
    (root / "sys/devices/system/cpu/online").write_text("0\n")
    (root / "proc").mkdir()
    (root / "proc/stat").write_text("cpu  0 0 0 0 0 0 0 0\ncpu0 100 0 0 1000 0 0 0 0 0 0\n")
    return root


def fake_two_cpu_board(root: Path) -> Path:
    """This machine's cpu0 and cpu1 as one unit at one clock (no DVFS control), with this
    machine's real ``/proc`` (so load workers and the DNN show in the load the board measures)."""
    d = root / "sys/devices/system/cpu/cpu0/cpufreq"
    d.mkdir(parents=True)
    for name, text in {"related_cpus": "0 1", "scaling_available_frequencies": "2000000", "scaling_cur_freq": "2000000"}.items():
        (d / name).write_text(text + "\n")
    (root / "sys/devices/system/cpu/online").write_text("0-1\n")
    (root / "proc").symlink_to("/proc")
    return root


@pytest.fixture
def profiled(tmp_path: Path, batches_dir: Path) -> tuple[Path, Path, Path]:
    """(fake sysfs root, board.yaml profiled on it, a 60-request budget trace for it)."""
    from dynscale_cli import main

    root = fake_one_cpu_board(tmp_path / "root")
    board = tmp_path / "board.yaml"
    assert main(["profile", "--out", str(board), "--data", str(batches_dir), "--repeats", "3", "--warmup", "1",
                 "--allow-dvfs", "--allow-busy", "--root", str(root), "--json"]) == 0  # fmt: skip
    trace = tmp_path / "trace.csv"
    assert main(["env", "record", "--platform", str(board), "--scenario", "tiny", "--length", "60", "--out", str(trace)]) == 0
    return root, board, trace


# ---------------------------------------------------------------- tiny platforms, DNNs and policies


TINY_PLATFORM = """
format: dynscale-platform
name: tiny
units:
  - name: cpu
    kind: cpu
    cores: 1
    switch_latency_us: 0
    dvfs: {freq_mhz: [100, 200], volt_v: [1.0, 1.0]}
    perf: {macs_per_cycle: 1, serial_fraction: 0, overhead_mcycles: 0, layer_overhead_kcycles: 0, sync_kcycles: 0, mem_bw_gbps: 1}
    power: {idle_dyn: 0.1, leak: 0.1, leak_temp_coeff: 0, leak_ref_c: 25, uncore: 0, per_core: 1}
thermal: {ambient_c: 25, r_th_c_per_w: 1, tau_s: 10, start_c: 25, trips: []}
interference: {mem_slowdown: 0}
noise: {latency_cv: 0, power_cv: 0}
sources: []
measured:
  # action order: (k1, 100 MHz), (k1, 200 MHz), (k2, 100 MHz), (k2, 200 MHz)
  latency_ms: [10, 5, 20, 10]
  power_w: [1.0, 2.2, 1.0, 2.0]   # energy 10, 11, 20, 20 mJ
"""


TINY_DNN = DNNProfile("tiny", (GroupCost(1, 0.7, 1_000_000, 1, 4, 0, 1), GroupCost(2, 0.8, 2_000_000, 2, 8, 0, 2)))


def trained_policy(tmp_path: Path, platform: str) -> Path:
    """A tiny PPO (a few hundred steps), exported; enough to check the export path."""
    from stable_baselines3 import PPO

    from agents.export import export_policy
    from envs import DynDNNEnv

    env = DynDNNEnv(platform, episode_length=64)
    model = PPO(
        "MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu", policy_kwargs={"net_arch": [32, 32]}
    )
    model.learn(128)
    out = tmp_path / platform
    out.mkdir()
    model.save(out / "model.zip")
    export_policy(model, env, out / "policy")
    return out
