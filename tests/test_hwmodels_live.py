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
