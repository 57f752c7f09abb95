"""``dynscale dnn ...``: train and evaluate the dynamic DNN."""

from __future__ import annotations

import argparse
from pathlib import Path

from dnn.backends import BACKENDS, check_backend_flags
from dnn.errors import UsageError, finite_float, positive_int, seed_int
from dnn.export import EXPORT_FORMATS
from dnn.fileio import check_outputs, json_text
from dnn.train import SHIPPED_WEIGHTS


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``dnn train``, ``dnn eval``, ``dnn export`` and ``dnn download`` under ``sub``."""
    dnn = sub.add_parser("dnn", help="train and evaluate the dynamic DNN", description=__doc__)
    dsub = dnn.add_subparsers(dest="dnn_command", required=True, metavar="COMMAND")

    t = dsub.add_parser(
        "train",
        help="incremental training, one stage per group",
        description="Train the dynamic DNN incrementally: stage k trains group k with groups 1..k-1 frozen.",
    )
    t.add_argument(
        "--data",
        required=True,
        help="CIFAR-10: cifar-10-batches-py/, cifar-10-python.tar.gz, or a train/ test/ class-folder tree or .tar.gz",
    )
    t.add_argument(
        "--epochs-per-stage",
        type=positive_int,
        default=16,
        help="epochs of each of the G stages (default: 16, the shipped weights)",
    )
    t.add_argument(
        "--out", required=True, help="weight file to write after every stage (its log goes next to it as NAME.log.csv)"
    )
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    t.add_argument("--seed", type=seed_int, default=0)
    t.add_argument("--batch-size", type=positive_int, default=128)
    t.add_argument("--lr", type=finite_float(positive=True), default=0.08, help="peak one-cycle learning rate (default: 0.08)")
    t.add_argument("--resume", action="store_true", help="continue from the stages already in --out")
    t.add_argument("--limit", type=positive_int, help="use N random training and N random test images (smoke runs)")
    t.add_argument("--cache-dir", help="where decoded arrays are cached (default: ~/.cache/dynscale)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=_train)

    e = dsub.add_parser(
        "eval",
        help="per-configuration accuracy, cost and latency",
        description="Evaluate every configuration k = 1..G of a weight file.",
    )
    e.add_argument("--weights", help=f"weight file (default: the shipped {SHIPPED_WEIGHTS.name})")
    e.add_argument("--data", required=True, help="CIFAR-10 in either layout (see dnn train --help)")
    e.add_argument("--limit", type=positive_int, help="evaluate N random test images")
    e.add_argument(
        "--repeats", type=positive_int, default=50, help="timed batch-1 runs per configuration and thread count (default: 50)"
    )
    e.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="torch (default); onnx, ncnn: the --export folder on ONNX Runtime or ncnn, compared with torch image by image",
    )
    e.add_argument("--export", metavar="DIR", help="export folder of `dnn export` (with --backend onnx or ncnn)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.add_argument("--write-profile", metavar="FILE", help="also write the DNN profile YAML that the platform models read")
    e.add_argument("--cache-dir", help="where decoded arrays are cached")
    e.add_argument("--quiet", action="store_true", help="no progress output")
    e.set_defaults(func=_eval)

    x = dsub.add_parser(
        "export",
        help="export every configuration for a runtime without torch",
        description="Export configurations k = 1..G for a runtime without torch: ONNX graphs that share one weights file, or "
        "ncnn .param/.bin pairs (plus model.json).",
    )
    x.add_argument("--weights", help=f"weight file (default: the shipped {SHIPPED_WEIGHTS.name})")
    x.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="onnx",
        help="onnx (default: one graph per k, one shared weights file) or ncnn (a .param/.bin pair per k, via pnnx)",
    )
    x.add_argument("--out", required=True, help="export folder (created)")
    x.add_argument("--quiet", action="store_true", help="no progress output")
    x.set_defaults(func=_export)

    d = dsub.add_parser(
        "download",
        help="download the official CIFAR-10 python batches (needs internet)",
        description="Download cifar-10-python.tar.gz from the official URL and check its md5.",
    )
    d.add_argument("--dest", default="data", help="folder to download into (default: ./data)")
    d.set_defaults(func=_download)


def _load(args: argparse.Namespace):
    from dnn.data import load_cifar10

    data = load_cifar10(args.data, cache_dir=args.cache_dir)
    return data.subset(args.limit) if args.limit else data


def _train(args: argparse.Namespace) -> int:
    from dnn.train import TrainSettings, log_path, train_incremental

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available to torch")
    check_outputs({"--out": args.out}, {"--data": args.data})
    data = _load(args)
    settings = TrainSettings(epochs_per_stage=args.epochs_per_stage, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    ckpt = train_incremental(data, args.out, settings, device=args.device, resume=args.resume, progress=not args.quiet)
    print(f"wrote {args.out} ({ckpt.stages_done} of {ckpt.model.groups} stages) and {log_path(Path(args.out))}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from dnn.evaluate import compare_backends, evaluate_configs, format_backend_table, format_table
    from dnn.profile import write_profile
    from dnn.train import load_weights

    weights = args.weights or str(SHIPPED_WEIGHTS)
    check_backend_flags(args.backend, args.export)  # a bad folder fails before the data is decoded
    if args.backend != "torch" and args.write_profile:
        raise UsageError("--write-profile: the DNN profile is written from the torch evaluation (--backend torch)")
    check_outputs({"--write-profile": args.write_profile}, {"--weights": weights, "--data": args.data})
    ckpt = load_weights(args.weights)
    if args.backend != "torch":
        data = _load(args)
        report = compare_backends(
            ckpt, args.backend, args.export, data, repeats=args.repeats, progress=not (args.json or args.quiet)
        )
        print(json_text(report) if args.json else format_backend_table(report))
        return 0
    data = _load(args)  # --limit trims the test split; the training split is not used here
    report = evaluate_configs(ckpt, data, weights=weights, repeats=args.repeats, progress=not (args.json or args.quiet))
    if args.write_profile:
        write_profile(Path(args.write_profile), report, weights=weights)
    if args.json:
        print(json_text(report))
    else:
        print(format_table(report))
    return 0


def _export(args: argparse.Namespace) -> int:
    from dnn.export import export_files, export_ncnn, export_onnx
    from dnn.train import load_weights

    weights = args.weights or str(SHIPPED_WEIGHTS)
    ckpt = load_weights(args.weights)
    # --out is a folder: each file the export writes there is checked (an existing export is replaced)
    outputs = {f"--out ({name})": Path(args.out) / name for name in export_files(ckpt.model.groups, args.format)}
    check_outputs(outputs, {"--weights": weights})
    if args.format == "ncnn":
        manifest = export_ncnn(ckpt, args.out, source=weights, progress=not args.quiet)
        pairs = ", ".join(f"{g['param']} + {g['bin']}" for g in manifest["graphs"].values())
        print(f"wrote {args.out}: {pairs} ({manifest['weights_bytes'] / 1e6:.2f} MB of weights), model.json")
        return 0
    manifest = export_onnx(ckpt, args.out, source=weights, progress=not args.quiet)
    graphs = ", ".join(manifest["graphs"].values())
    print(f"wrote {args.out}: {graphs} sharing {manifest['weights']} ({manifest['weights_bytes'] / 1e6:.2f} MB), model.json")
    return 0


def _download(args: argparse.Namespace) -> int:
    from dnn.data import download_cifar10

    path = download_cifar10(args.dest)
    print(f"{path}: verified; use --data {path}")
    return 0
