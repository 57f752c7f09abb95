"""Per-configuration evaluation of the dynamic DNN: accuracy, confidence, cost, latency.

``dynscale dnn eval --write-profile`` turns the evaluation into the DNN profile
(:mod:`dnn.profile`) that the platform models read.
"""

from __future__ import annotations

import statistics

import torch

from dnn.data import Cifar10, to_tensor
from dnn.model import DynamicAlexNet, count_macs, count_params, trace_layers, weight_bytes
from dnn.runner import median_latency_ms
from dnn.train import Checkpoint, predict_proba


def activation_stats(model: DynamicAlexNet, k: int) -> tuple[int, int]:
    """(bytes of layer outputs, number of conv/linear layers) of one image through configuration k."""
    layers = trace_layers(model, k)
    return sum(out.numel() * out.element_size() for _, out in layers), len(layers)


def evaluate_configs(ckpt: Checkpoint, data: Cifar10, weights: str, repeats: int = 50, progress: bool = True) -> dict:
    """Accuracy, confidence, cost and latency of every configuration of a trained model.

    :param ckpt: the loaded weight file
    :param data: dataset whose test split is evaluated
    :param weights: the weight file's path, recorded in the report
    :param repeats: timed batch-1 runs per configuration and thread count
    :param progress: show a progress bar
    :return: a JSON-ready report with one entry per configuration under ``configs``
    """
    from dnn.progress import progress as progress_bar

    model = ckpt.model
    x = to_tensor(data.test_x, ckpt.mean, ckpt.std)
    y = torch.from_numpy(data.test_y)
    all_threads = torch.get_num_threads()
    configs = []
    bar = progress_bar(model.groups, "configurations", progress, "config", leave=False)
    for k in range(1, model.groups + 1):
        bar.update()
        proba = predict_proba(model, x, k)
        act_bytes, layers = activation_stats(model, k)
        configs.append(
            {
                "groups": k,
                "top1": float((proba.argmax(1) == y).float().mean()),
                "confidence": float(proba[torch.arange(len(y)), y].mean()),
                "macs": count_macs(model, k),
                "params": count_params(model, k),
                "weight_bytes": weight_bytes(model, k),
                "activation_bytes": act_bytes,
                "layers": layers,
                "latency_ms": {
                    "threads_1": median_latency_ms(ckpt, k, 1, repeats),
                    f"threads_{all_threads}": median_latency_ms(ckpt, k, all_threads, repeats),
                },
            }
        )
    full = configs[-1]
    for c in configs:
        c["confidence_rel"] = c["confidence"] / full["confidence"] if full["confidence"] else 0.0
        c["macs_rel"] = c["macs"] / full["macs"]
    separate = sum(c["weight_bytes"] for c in configs)
    shared = sum(t.numel() * t.element_size() for t in model.state_dict().values() if t.is_floating_point())
    return {
        "weights": weights,
        "data": data.source,
        "test_images": len(y),
        "stages_trained": ckpt.stages_done,
        "configs": configs,
        "memory": {
            "one_file_bytes": shared,
            "separate_models_bytes": separate,
            "ratio": separate / shared,
        },
    }


def format_table(report: dict) -> str:
    """The report as a fixed-width text table."""
    lat_keys = list(report["configs"][0]["latency_ms"])
    head = (
        f"{'k':>2} {'top-1':>7} {'conf':>6} {'conf/k4':>7} {'MMACs':>8} {'MACs/k4':>7} {'params':>9} {'weights MB':>10} "
        + " ".join(f"{'ms ' + key.replace('threads_', '') + 'thr':>8}" for key in lat_keys)
    )
    lines = [head, "-" * len(head)]
    for c in report["configs"]:
        lines.append(
            f"{c['groups']:>2} {c['top1'] * 100:>6.2f}% {c['confidence']:>6.3f} {c['confidence_rel']:>7.3f} {c['macs'] / 1e6:>8.2f} "
            f"{c['macs_rel']:>7.3f} {c['params']:>9,} {c['weight_bytes'] / 1e6:>10.2f} "
            + " ".join(f"{c['latency_ms'][key]:>8.3f}" for key in lat_keys)
        )
    m = report["memory"]
    lines.append(
        f"\n{report['test_images']} test images of {report['data']}. One weight file serves all configurations: "
        f"{m['one_file_bytes'] / 1e6:.2f} MB vs {m['separate_models_bytes'] / 1e6:.2f} MB for four separate models "
        f"({m['ratio']:.2f}x)."
    )
    return "\n".join(lines)


def compare_backends(
    ckpt: Checkpoint, backend: str, folder: str, data: Cifar10, repeats: int = 50, progress: bool = True
) -> dict:
    """The exported graphs on ``backend`` (ONNX Runtime, ncnn) against torch, per configuration:
    top-1 of each on the test images, how often their predictions agree, the largest logit
    difference, and batch-1 latency of each with one thread and with all of them.

    :param ckpt: the weight file the export was made from
    :param backend: ``onnx`` or ``ncnn`` (:data:`dnn.backends.EXPORTED`)
    :param folder: the export folder (``dynscale dnn export --format <backend>``)
    :param data: dataset whose test split is evaluated
    :param repeats: timed batch-1 runs per configuration, backend and thread count
    """
    import numpy as np

    from dnn.backends import make_runner
    from dnn.exported import normalise
    from dnn.progress import progress as progress_bar

    runner = make_runner(backend, "cpu", export=folder)
    x_np = normalise(data.test_x, runner.manifest["mean"], runner.manifest["std"])
    x = to_tensor(data.test_x, ckpt.mean, ckpt.std)
    y = data.test_y
    all_threads = torch.get_num_threads()
    rows = []
    bar = progress_bar(ckpt.model.groups, "configurations", progress, "config", leave=False)
    for k in range(1, ckpt.model.groups + 1):
        with torch.no_grad():
            ref = torch.cat([ckpt.model(x[i : i + 1000], groups=k) for i in range(0, len(x), 1000)]).numpy()
        runner.set_threads(all_threads)
        got = np.concatenate([runner.logits(x_np[i : i + 1000], k) for i in range(0, len(x_np), 1000)])
        latency = {}
        for threads in sorted({1, all_threads}):  # median_latency_ms restores torch's thread count
            latency[f"torch_threads_{threads}"] = median_latency_ms(ckpt, k, threads, repeats)
            latency[f"{backend}_threads_{threads}"] = statistics.median(runner.time_config(k, threads, repeats, warmup=10))
        rows.append(
            {
                "groups": k,
                "top1_torch": float(np.mean(ref.argmax(1) == y)),
                "top1_backend": float(np.mean(got.argmax(1) == y)),
                "prediction_agreement": float(np.mean(ref.argmax(1) == got.argmax(1))),
                "max_abs_logit_diff": float(np.max(np.abs(ref - got))),
                "latency_ms": latency,
            }
        )
        bar.update()
    bar.close()
    return {"backend": backend, "export": str(folder), "data": data.source, "test_images": len(y), "configs": rows}


def format_backend_table(report: dict) -> str:
    """:func:`compare_backends`'s report as a fixed-width text table."""
    keys = list(report["configs"][0]["latency_ms"])
    name = f"top-1 {report['backend']}"
    head = f"{'k':>2} {'top-1 torch':>11} {name:>10} {'diff pts':>8} {'agree':>7} {'max |dlogit|':>12} " + " ".join(
        f"{k.replace('_threads_', ' ms ') + 'thr':>14}" for k in keys
    )
    lines = [head, "-" * len(head)]
    for c in report["configs"]:
        lines.append(
            f"{c['groups']:>2} {c['top1_torch'] * 100:>10.2f}% {c['top1_backend'] * 100:>9.2f}% "
            f"{(c['top1_backend'] - c['top1_torch']) * 100:>8.2f} {c['prediction_agreement'] * 100:>6.2f}% "
            f"{c['max_abs_logit_diff']:>12.2e} " + " ".join(f"{c['latency_ms'][k]:>14.3f}" for k in keys)
        )
    lines.append(f"\n{report['test_images']} test images of {report['data']}; export {report['export']}.")
    return "\n".join(lines)
