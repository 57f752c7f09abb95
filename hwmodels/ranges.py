"""Dynamic ranges of a platform: largest / smallest latency and energy over configurations."""

from __future__ import annotations

import numpy as np

from hwmodels.model import PlatformModel

#: Xun et al. (MLCAD 2019): mapping and DVFS make the range this much wider than the DNN alone.
PAPER_WIDER = {"time": 41.6, "energy": 10.6}


def dynamic_ranges(model: PlatformModel, temp_c: float = 25.0) -> dict:
    """Ranges on an idle board at ``temp_c``: the DNN alone (k = 1..G at the mapping fastest for
    k = G) and DNN x mapping x DVFS (all configurations), and how much wider the second is."""
    t, e = model.idle_table(temp_c)
    sp = model.space
    full = sp.groups == model.dnn.max_groups
    best = int(np.flatnonzero(full)[np.argmin(t[full])])
    same_map = (sp.unit_idx == sp.unit_idx[best]) & (sp.cores == sp.cores[best]) & (sp.freq_mhz == sp.freq_mhz[best])
    fastest = model.space.decode(best)
    dnn_t, dnn_e = t[same_map], e[same_map]
    res = {
        "platform": model.spec.name,
        "temp_c": temp_c,
        "configurations": len(sp),
        "fastest_mapping": {"unit": fastest.unit, "cores": fastest.cores, "freq_mhz": fastest.freq_mhz},
        "dnn_alone": {"time": float(dnn_t.max() / dnn_t.min()), "energy": float(dnn_e.max() / dnn_e.min())},
        "all": {
            "time": float(t.max() / t.min()),
            "energy": float(e.max() / e.min()),
            "latency_ms": [float(t.min()), float(t.max())],
            "energy_mj": [float(e.min()), float(e.max())],
        },
    }
    res["wider"] = {q: res["all"][q] / res["dnn_alone"][q] for q in ("time", "energy")}
    res["paper_wider"] = dict(PAPER_WIDER)
    return res


def format_ranges(r: dict) -> str:
    m = r["fastest_mapping"]
    return "\n".join(
        [
            f"{r['platform']}: {r['configurations']} configurations, idle board at {r['temp_c']:g} C",
            f"{'':<28} {'time':>10} {'energy':>10}",
            f"{'DNN alone (k=1..G)':<28} {r['dnn_alone']['time']:>9.2f}x {r['dnn_alone']['energy']:>9.2f}x   at {m['unit']} x{m['cores']} @ {m['freq_mhz']:g} MHz",
            (
                f"{'DNN x mapping x DVFS':<28} {r['all']['time']:>9.2f}x {r['all']['energy']:>9.2f}x   "
                f"{r['all']['latency_ms'][0]:.2f}-{r['all']['latency_ms'][1]:.1f} ms, {r['all']['energy_mj'][0]:.2f}-{r['all']['energy_mj'][1]:.1f} mJ"
            ),
            f"{'wider by (ours)':<28} {r['wider']['time']:>9.1f}x {r['wider']['energy']:>9.1f}x",
            f"{'wider by (paper)':<28} {r['paper_wider']['time']:>9.1f}x {r['paper_wider']['energy']:>9.1f}x",
            "Note: the paper measures its own AlexNet on its boards and may define the DNN-alone range at",
            "another mapping; ours is the shipped CIFAR-10 network on the calibrated model.",
        ]
    )
