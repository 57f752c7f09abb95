"""``dynscale platform ...``: inspect platform models (show, ranges, query)."""

from __future__ import annotations

import argparse

import numpy as np

from dnn.errors import finite_float, positive_int
from dnn.fileio import json_text
from hwmodels.profile import TEMP_RANGE_C


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``platform show``, ``platform ranges`` and ``platform query`` under ``sub``."""
    p = sub.add_parser("platform", help="inspect platform models", description=__doc__)
    psub = p.add_subparsers(dest="platform_command", required=True, metavar="COMMAND")

    s = psub.add_parser(
        "show",
        help="units, DVFS tables and the calibration report",
        description="Units, DVFS tables, sources and the calibration report of a platform profile.",
    )
    s.add_argument("platform", help="xu3, nano, or a profile YAML path")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_show)

    r = psub.add_parser(
        "ranges",
        help="dynamic ranges of time and energy",
        description="Largest / smallest latency and energy over configurations, idle board at 25 C.",
    )
    r.add_argument("platform")
    r.add_argument("--dnn-profile", help="DNN profile YAML (default: the shipped one)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_ranges)

    q = psub.add_parser(
        "query",
        help="one configuration's latency, power and energy in a given state",
        description="What-if: expected latency, power, energy and delivered frequency of one configuration.",
    )
    q.add_argument("platform")
    q.add_argument("--groups", type=positive_int, required=True)
    q.add_argument("--unit", required=True)
    q.add_argument("--cores", type=positive_int, default=1)
    q.add_argument("--freq", type=finite_float(positive=True), required=True, help="MHz, a value of the unit's DVFS table")
    q.add_argument(
        "--load", action="append", default=[], metavar="UNIT=THREADS", help="busy background threads on a unit (repeatable)"
    )
    q.add_argument(
        "--mem",
        action="append",
        default=[],
        metavar="UNIT=0..1",
        help="memory intensity of a unit's background load (repeatable)",
    )
    q.add_argument("--temp", type=finite_float(*TEMP_RANGE_C), default=25.0, help="die temperature in C, -40..150 (default: 25)")
    q.add_argument(
        "--awake-ms",
        type=finite_float(0.0),
        default=0.0,
        help="CPU time the process ran since it woke for the request when the inference starts: spends that much of the "
        "wake-up credit (deploy logs it per request as awake_ms; default: 0)",
    )
    q.add_argument(
        "--tick-phase-ms",
        type=finite_float(0.0),
        help="how far into a scheduler tick the process woke (deploy logs it as wake_tick_phase_ms): the wait "
        "counts the ticks that fall in the run beyond the credit; needs a profile with a tick grid (default: "
        "unknown, the mean wait over the phase)",
    )
    q.add_argument("--dnn-profile", help="DNN profile YAML (default: the shipped one)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_query)


def _model(args: argparse.Namespace):
    from dnn.profile import load_dnn_profile
    from hwmodels.model import PlatformModel
    from hwmodels.profile import load_platform

    return PlatformModel(load_platform(args.platform), load_dnn_profile(getattr(args, "dnn_profile", None)))


def _show(args: argparse.Namespace) -> int:
    from hwmodels.calibrate import calibration_report, format_report
    from hwmodels.profile import load_platform

    spec = load_platform(args.platform)
    rows = calibration_report(spec)
    if args.json:
        print(
            json_text(
                {
                    "platform": spec.name,
                    "units": [
                        {
                            "name": u.name,
                            "kind": u.kind,
                            "cores": u.cores,
                            "freq_mhz": u.freqs_mhz.tolist(),
                            "volt_v": u.volts.tolist(),
                        }
                        for u in spec.units
                    ],
                    "sources": list(spec.sources),
                    "calibration": [
                        {
                            "quantity": r.quantity,
                            "condition": r.condition,
                            "published": r.published,
                            "model": r.model,
                            "error": r.error,
                            "tolerance": r.tolerance,
                            "ok": r.ok,
                            "source": r.source,
                        }
                        for r in rows
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(f"{spec.name}: {spec.description}\n")
    for u in spec.units:
        print(
            f"{u.name} ({u.kind}, {u.cores} core{'s' if u.cores > 1 else ''}{', cpus ' + ','.join(map(str, u.cpus)) if u.cpus else ''}): "
            f"{len(u.freqs_mhz)} DVFS points {u.freqs_mhz[0]:g}-{u.freqs_mhz[-1]:g} MHz at {u.volts[0]:.3f}-{u.volts[-1]:.3f} V, switch {u.switch_latency_us:g} us"
        )
    th = spec.thermal
    print(
        f"thermal: ambient {th.ambient_c:g} C, {th.r_th_c_per_w:g} C/W, tau {th.tau_s:g} s; trips: "
        + ", ".join(f"{t.temp_c:g} C -> {t.unit} <= {t.max_freq_mhz:g} MHz" for t in th.trips)
    )
    print("\nsources:")
    for s in spec.sources:
        print(f"  - {s['figure']}  [{s['used_for']}]")
    if not rows:
        print("\ncalibration: none (the profile has no published points to check against)")
        return 0
    errs = [abs(r.error) for r in rows if not r.quantity.startswith("temperature")]
    mean = f"mean |error| {np.mean(errs) * 100:.1f}% over non-thermal points" if errs else "thermal points only"
    print(f"\ncalibration: {sum(r.ok for r in rows)} of {len(rows)} published points within tolerance; {mean}\n")
    print(format_report(rows))
    return 0


def _ranges(args: argparse.Namespace) -> int:
    from hwmodels.ranges import dynamic_ranges, format_ranges

    r = dynamic_ranges(_model(args))
    print(json_text(r) if args.json else format_ranges(r))
    return 0


def _parse_unit_values(items: list[str], flag: str, units: list[str], lo: float, hi: float | None) -> dict[str, float]:
    from hwmodels.config import ConfigError

    out = {}
    for item in items:
        name, sep, val = item.partition("=")
        if not sep or name not in units:
            raise ConfigError(f"{flag} {item!r}: expected UNIT=VALUE with UNIT one of {', '.join(units)}")
        try:
            v = float(val)
        except ValueError:
            raise ConfigError(f"{flag} {item!r}: {val!r} is not a number") from None
        if not np.isfinite(v) or v < lo or (hi is not None and v > hi):
            raise ConfigError(f"{flag} {item!r}: value must be in {lo:g}..{'inf' if hi is None else f'{hi:g}'}")
        out[name] = v
    return out


def _query(args: argparse.Namespace) -> int:
    from hwmodels.config import Config, ConfigError
    from hwmodels.model import MAX_LOAD_THREADS_PER_CORE, State

    model = _model(args)
    names = [u.name for u in model.spec.units]
    cfg = Config(args.groups, args.unit, args.cores, args.freq)
    index = model.space.encode(cfg)
    load = _parse_unit_values(args.load, "--load", names, 0.0, None)
    for u in model.spec.units:
        if load.get(u.name, 0.0) > MAX_LOAD_THREADS_PER_CORE * u.cores:
            raise ConfigError(
                f"--load {u.name}={load[u.name]:g}: at most {MAX_LOAD_THREADS_PER_CORE * u.cores:g} threads on {u.cores} core(s)"
            )
    mem = _parse_unit_values(args.mem, "--mem", names, 0.0, 1.0)
    loads, mems = np.array([load.get(n, 0.0) for n in names]), np.array([mem.get(n, 0.0) for n in names])
    phase = args.tick_phase_ms
    if phase is not None and not phase < model.tick_ms:
        raise ConfigError(
            f"--tick-phase-ms {phase:g}: must be below the profile's {model.tick_ms:g} ms tick"
            if model.tick_ms > 0
            else f"--tick-phase-ms: {args.platform} has no tick grid (interference.tick_hz 0, or no quanta)"
        )
    state = State(loads, mems, args.temp, None, args.awake_ms, phase)
    o = model.expected(index, state)
    res = {
        "platform": model.spec.name,
        "config": {"groups": cfg.groups, "unit": cfg.unit, "cores": cfg.cores, "freq_mhz": cfg.freq_mhz},
        "state": {"load": load, "mem": mem, "temp_c": args.temp, "awake_ms": args.awake_ms, "tick_phase_ms": phase},
        "latency_ms": o.latency_ms,
        "wait_ms": o.wait_ms,
        "power_w": o.power_w,
        "energy_mj": o.energy_mj,
        "delivered_freq_mhz": o.freq_mhz,
        "accuracy": model.dnn.cost(cfg.groups).top1,
    }
    if args.json:
        print(json_text(res))
    else:
        capped = "" if o.freq_mhz == cfg.freq_mhz else f" (thermally capped from {cfg.freq_mhz:g})"
        print(
            f"{cfg} on {model.spec.name}: latency {o.latency_ms:.3f} ms ({'' if phase is None else 'at that tick phase, '}"
            f"mean wait for co-runners {o.wait_ms:.3f} ms), power {o.power_w:.3f} W, energy {o.energy_mj:.3f} mJ, "
            f"delivered {o.freq_mhz:g} MHz{capped}, top-1 {res['accuracy'] * 100:.2f}%"
        )
    return 0
