import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwmodels.live import Cpufreq, LiveError, Sysfs, busy_threads, cpu_times

A7_KHZ = [f * 1000 for f in range(200, 1401, 100)]
A15_KHZ = [f * 1000 for f in range(200, 2001, 100)]


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


def test_discovery_finds_both_clusters(tmp_path: Path) -> None:
    cf = Cpufreq(Sysfs(fake_xu3(tmp_path)))
    assert [p.cpus for p in cf.policies] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert cf.policy_of(5).freqs_khz[-1] == 2_000_000 and cf.policy_of(2).freqs_khz[-1] == 1_400_000
    assert cf.current_khz(4) == 2_000_000
    assert cf.can_control(cf.policies[0]) == (True, "")
    with pytest.raises(LiveError, match=r"cpu9: no cpufreq policy \(this board offers: cpu0-3, cpu4-7\)"):
        cf.policy_of(9)


def test_set_writes_the_right_files_and_restore_puts_them_back(tmp_path: Path) -> None:
    root = fake_xu3(tmp_path)
    a15 = root / "sys/devices/system/cpu/cpu4/cpufreq"
    with Cpufreq(Sysfs(root), allow_dvfs=True) as cf:
        cf.set_khz(4, 1_200_000)
        assert (a15 / "scaling_governor").read_text().strip() == "userspace"
        assert (a15 / "scaling_setspeed").read_text().strip() == "1200000"
        cf.set_khz(6, 800_000)  # same policy: originals saved once
        assert (a15 / "scaling_setspeed").read_text().strip() == "800000"
    assert (a15 / "scaling_governor").read_text().strip() == "performance"
    assert (root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() == "ondemand"


def test_restore_after_an_exception(tmp_path: Path) -> None:
    root = fake_xu3(tmp_path)
    with pytest.raises(ZeroDivisionError), Cpufreq(Sysfs(root), allow_dvfs=True) as cf:
        cf.set_khz(0, 600_000)
        1 / 0  # noqa: B018
    assert (root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() == "ondemand"


def test_refusals_are_clear(tmp_path: Path) -> None:
    root = fake_xu3(tmp_path)
    with pytest.raises(LiveError, match="pass --allow-dvfs"):
        Cpufreq(Sysfs(root)).set_khz(4, 1_000_000)
    with pytest.raises(LiveError, match="2100000 kHz is not offered; valid: 200000, 300000"):
        Cpufreq(Sysfs(root), allow_dvfs=True).set_khz(4, 2_100_000)
    (root / "sys/devices/system/cpu/cpu4/cpufreq/scaling_governor").unlink()
    with pytest.raises(LiveError, match=r"cpu4/cpufreq/scaling_governor: missing"):
        Cpufreq(Sysfs(root), allow_dvfs=True).set_khz(4, 1_000_000)


def test_permission_denied_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwmodels import live

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(live, "open", denied, raising=False)  # as a non-root user on a board
    with pytest.raises(LiveError, match=r"cpu4/cpufreq/scaling_governor: permission denied \(DVFS control needs root\)"):
        Cpufreq(Sysfs(fake_xu3(tmp_path)), allow_dvfs=True).set_khz(4, 1_000_000)


def test_restore_on_sigterm_in_a_child_process(tmp_path: Path) -> None:
    root = fake_xu3(tmp_path)
    code = (
        "import time\n"
        "from hwmodels.live import Cpufreq, Sysfs, restore_on_exit\n"
        f"cf = Cpufreq(Sysfs({str(root)!r}), allow_dvfs=True)\n"
        "restore_on_exit(cf)\n"
        "cf.set_khz(4, 500000)\n"
        "print('pinned', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    assert proc.stdout.readline().strip() == "pinned"
    gov = root / "sys/devices/system/cpu/cpu4/cpufreq/scaling_governor"
    assert gov.read_text().strip() == "userspace"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    deadline = time.time() + 5
    while gov.read_text().strip() != "performance" and time.time() < deadline:
        time.sleep(0.05)
    assert gov.read_text().strip() == "performance"


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


def test_proc_stat_load_matches_hand_computation() -> None:
    before, after = cpu_times(STAT_BEFORE), cpu_times(STAT_AFTER)
    # cpu0: busy +100 of total +100 -> 1.0; cpu1: busy +50 (user 20 + system 30) of total +120
    # (busy 50 + idle 50 + iowait 20) -> 50/120
    assert before[0] == (150, 400) and after[1] == (200, 520)
    assert busy_threads(before, after, (0,)) == pytest.approx(1.0)
    assert busy_threads(before, after, (0, 1)) == pytest.approx(1.0 + 50 / 120)


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


def test_xu3_ina231_bus_is_discovered_and_enabled(tmp_path: Path) -> None:
    from hwmodels.live import discover_power_rails, read_power_w, read_temp_c, thermal_zones

    root = fake_xu3(tmp_path)
    add_xu3_sensors(root, bus="3")
    fs = Sysfs(root)
    rails = {r.name: r for r in discover_power_rails(fs)}
    assert set(rails) == {"a15", "a7", "mem", "gpu"}
    assert read_power_w(fs, rails["a15"]) == pytest.approx(1.234)
    assert (root / "sys/bus/i2c/drivers/INA231/3-0040/enable").read_text().strip() == "1"
    zones = thermal_zones(fs)
    assert read_temp_c(fs, zones["cpu-thermal"]) == 52.0


def test_nano_rails_by_name_and_gpu_pinning(tmp_path: Path) -> None:
    from hwmodels.live import GpuDevfreq, board_info, discover_power_rails, read_power_w

    root = fake_nano(tmp_path)
    fs = Sysfs(root)
    rails = {r.name: r for r in discover_power_rails(fs)}
    assert read_power_w(fs, rails["a57"]) == pytest.approx(0.320) and read_power_w(fs, rails["total"]) == pytest.approx(2.003)
    g = root / "sys/devices/gpu.0/devfreq/57000000.gpu"
    gpu = GpuDevfreq(fs, allow_dvfs=True)
    gpu.set_hz(int(76.8e6 * 5))
    assert (g / "min_freq").read_text().strip() == (g / "max_freq").read_text().strip() == str(int(76.8e6 * 5))
    gpu.restore()
    assert (g / "min_freq").read_text().strip() == str(int(76.8e6)) and (g / "max_freq").read_text().strip() == str(
        int(76.8e6 * 12)
    )
    with pytest.raises(LiveError, match="gpu: DVFS writes are off"):
        GpuDevfreq(fs).set_hz(int(76.8e6))
    info = board_info(fs)
    assert [u["name"] for u in info["units"]] == ["cpu0-3", "gpu"] and info["power_rails"]["gpu"].endswith("in_power1_input")


def test_board_info_cli_on_a_fake_xu3_and_on_a_machine_without_cpufreq(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from agents.cli import main

    root = fake_xu3(tmp_path / "xu3")
    add_xu3_sensors(root)
    assert main(["board", "info", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "cpu0-3 (cpu cpus 0,1,2,3): 13 DVFS points 200-1400 MHz; DVFS control: yes" in out and "a15 (" in out
    bare = tmp_path / "vm"
    (bare / "sys/devices/system/cpu").mkdir(parents=True)
    (bare / "sys/devices/system/cpu/online").write_text("0-1\n")
    assert main(["board", "info", "--root", str(bare), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert (
        info["units"][0]["cpus"] == [0, 1]
        and not info["units"][0]["dvfs_control"]
        and "no cpufreq driver" in info["units"][0]["why_not"]
    )
    assert info["power"].startswith("none")


def test_rapl_counters_and_wraparound(tmp_path: Path) -> None:
    from hwmodels.live import EnergyCounter, discover_energy_counters, energy_j

    d = tmp_path / "sys/class/powercap/intel-rapl:0"
    d.mkdir(parents=True)
    (d / "name").write_text("package-0\n")
    (d / "energy_uj").write_text("123456\n")
    (d / "max_energy_range_uj").write_text("1000000\n")
    (counter,) = discover_energy_counters(Sysfs(tmp_path))
    assert counter.name == "package-0:0" and counter.max_range_uj == 1_000_000
    assert energy_j(100_000, 600_000, counter) == pytest.approx(0.5)
    assert energy_j(900_000, 100_000, counter) == pytest.approx(0.2)  # wrapped once
    with pytest.raises(LiveError, match="range is unknown"):
        energy_j(900_000, 100_000, EnergyCounter("x", "/x", 0))


def test_affinity_pins_and_refuses_offline_cpus() -> None:
    from hwmodels.live import set_affinity

    original = sorted(os.sched_getaffinity(0))
    try:
        set_affinity([original[0]])
        assert sorted(os.sched_getaffinity(0)) == [original[0]]
        with pytest.raises(LiveError, match=r"cannot run on cpus \[4096\]"):
            set_affinity([4096])
    finally:
        os.sched_setaffinity(0, set(original))
