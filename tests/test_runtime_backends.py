import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import STAT_AFTER, STAT_BEFORE, add_xu3_sensors, fake_nano, fake_xu3

from runtime.dvfs import Cpufreq
from runtime.load import busy_threads, cpu_times
from runtime.sysfs import LiveError, Sysfs


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
    from runtime import sysfs as live

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(live, "open", denied, raising=False)  # as a non-root user on a board
    with pytest.raises(LiveError, match=r"cpu4/cpufreq/scaling_governor: permission denied \(DVFS control needs root\)"):
        Cpufreq(Sysfs(fake_xu3(tmp_path)), allow_dvfs=True).set_khz(4, 1_000_000)


def test_restore_on_sigterm_in_a_child_process(tmp_path: Path) -> None:
    root = fake_xu3(tmp_path)
    code = (
        "import time\n"
        "from runtime.dvfs import Cpufreq\nfrom runtime.sysfs import Sysfs, restore_on_exit\n"
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


def test_proc_stat_load_matches_hand_computation() -> None:
    before, after = cpu_times(STAT_BEFORE), cpu_times(STAT_AFTER)
    # cpu0: busy +100 of total +100 -> 1.0; cpu1: busy +50 (user 20 + system 30) of total +120
    # (busy 50 + idle 50 + iowait 20) -> 50/120
    assert before[0] == (150, 400) and after[1] == (200, 520)
    assert busy_threads(before, after, (0,)) == pytest.approx(1.0)
    assert busy_threads(before, after, (0, 1)) == pytest.approx(1.0 + 50 / 120)


def test_xu3_ina231_bus_is_discovered_and_enabled(tmp_path: Path) -> None:
    from runtime.sensors import discover_power_rails, read_power_w, read_temp_c, thermal_zones

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
    from runtime.dvfs import GpuDevfreq
    from runtime.info import board_info
    from runtime.sensors import discover_power_rails, read_power_w

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
    from dynscale_cli import main

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
    from runtime.sensors import EnergyCounter, discover_energy_counters, energy_j

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
    from runtime.topology import set_affinity

    original = sorted(os.sched_getaffinity(0))
    try:
        set_affinity([original[0]])
        assert sorted(os.sched_getaffinity(0)) == [original[0]]
        with pytest.raises(LiveError, match=r"cannot run on cpus \[4096\]"):
            set_affinity([4096])
    finally:
        os.sched_setaffinity(0, set(original))
