"""``dynscale bundle``: everything a board needs to run a trained policy live, in one folder that
installs with numpy, PyYAML and the DNN runtime's own package alone (ONNX Runtime or ncnn; no
torch, stable-baselines3, gymnasium, SciPy or matplotlib: torch has no wheels for the XU3's
armv7, and a current CUDA torch is out of reach on most Jetson Nanos).

The folder holds the exported policy (``policy.npz``, ``policy.json``), the exported DNN
(``dnn/``: ONNX graphs sharing one weights file, or ncnn pairs), the board's platform profile
(``board.yaml``, measured with ``--backend onnx`` or ``ncnn`` on that export), the live runtime's source
(``src/``: the project's packages without the torch weights), ``requirements.txt``, the
``dynscale-board`` launcher (``board info``, ``deploy`` and ``profile``) and ``bundle.json`` saying
what went in. It is written beside its destination and renamed into place, so it is whole or absent.

Without a policy it is a **profiling kit**: the export, the source and the launcher, for
``dynscale-board profile`` on a board torch does not run on; its profile comes back to train the
board's policy, which is then bundled with it. Profiling fits the model with SciPy:
``requirements-profile.txt`` adds it (deploy does not need it).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from dnn.errors import UsageError
from dnn.fileio import incomplete_reason

#: the project's packages the live loop imports (their heavy dependencies load only when used)
PACKAGES = ("dnn", "hwmodels", "envs", "agents", "runtime")
#: what ``pip install -r requirements.txt`` installs on the board: these and the backend's package
REQUIREMENTS = ("numpy>=1.24", "pyyaml>=6.0")
#: what profiling on the board adds (the model's least-squares fits)
PROFILE_REQUIREMENTS = ("scipy>=1.10",)
#: the package of each backend a bundle can run
BACKEND_REQUIREMENT = {"onnx": "onnxruntime>=1.20", "ncnn": "ncnn>=1.0.20250101"}
#: package files that are not needed live (the torch weights: the board runs the export)
SKIP_SUFFIXES = (".pt", ".pyc")

LAUNCHER = """#!/usr/bin/env python3
# dynscale-board: `board info`, `deploy` and `profile` of this bundle (numpy, PyYAML and the DNN runtime; profile: SciPy too)
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "src"))
from runtime.board_cli import main  # noqa: E402

sys.exit(main())
"""


def make_bundle(
    run: str | os.PathLike | None, platform: str | os.PathLike | None, export: str | os.PathLike, out: str | os.PathLike
) -> dict:
    """Write the bundle of ``run``'s policy for the board ``platform`` describes to ``out`` (or,
    without ``run``, a profiling kit of ``export``).

    :param run: a run folder (``policy.npz`` + ``policy.json``) or a policy file; ``None``: a profiling kit
    :param platform: the board's profile, measured with ``--backend onnx`` or ``ncnn`` and ``--export``
        ``export`` (``None`` for a kit)
    :param export: the export folder the board was (or is to be) profiled with (``dynscale dnn export``)
    :param out: the bundle folder to create (must not exist)
    :return: the bundle's manifest (``bundle.json``)
    """
    from dnn.backends import export_backend, load_export_manifest

    out = Path(out)
    if out.exists():
        raise UsageError(f"--out {out}: exists; a bundle is written into a new folder")
    for flag, folder in (("run", run), ("--export", export)):
        if folder is not None and Path(folder).is_dir() and Path(folder).resolve() in out.resolve().parents:
            raise UsageError(f"--out {out}: inside {flag} {folder}; write the bundle elsewhere")
    if (run is None) != (platform is None):
        raise UsageError("--platform: give it with a run (a policy's bundle), leave both out for a profiling kit")
    if run is None:
        backend = export_backend(export)
        manifest = load_export_manifest(backend, export)
        info = {"format": "dynscale-bundle", "kind": "profiling kit"}
    else:
        spec, backend, manifest = _check_policy(run, platform, export)
        info = {
            "format": "dynscale-bundle",
            "kind": "policy",
            "run": str(Path(run).resolve()),
            "platform": spec.name,
            "platform_digest": spec.digest,
        }
    requirements = [*REQUIREMENTS, BACKEND_REQUIREMENT[backend]]
    info.update(
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
        backend=backend,
        dnn_weights_sha256=manifest["weights_sha256"],
        requirements=requirements,
        profile=f"./dynscale-board profile --backend {backend} --export dnn --data CIFAR10 "
        f"--out {'board.yaml' if run is None else 'board-new.yaml'} (after pip install -r requirements-profile.txt)",
    )
    if run is not None:
        info["deploy"] = (
            f"./dynscale-board deploy --controller policy.npz --platform board.yaml --backend {backend} --export dnn "
            "--budgets TRACE.csv --log log.jsonl"
        )
    out.parent.mkdir(parents=True, exist_ok=True)  # the temporary folder must be on the same file system
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private
    try:
        if run is not None:
            from agents.numpy_policy import policy_paths

            npz, meta = policy_paths(run)
            shutil.copy2(npz, tmp / "policy.npz")
            shutil.copy2(meta, tmp / "policy.json")
            shutil.copy2(platform, tmp / "board.yaml")
        shutil.copytree(export, tmp / "dnn")
        _copy_sources(tmp / "src")
        (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n")
        (tmp / "requirements-profile.txt").write_text("\n".join([*requirements, *PROFILE_REQUIREMENTS]) + "\n")
        (tmp / "dynscale-board").write_text(LAUNCHER)
        (tmp / "dynscale-board").chmod(0o755)
        (tmp / "bundle.json").write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _check_policy(run, platform, export):
    """The profile, backend and export manifest of a policy's bundle, checked: the profile was
    measured on ``export`` with an exported backend, and the policy decides for that board."""
    from agents.numpy_policy import load_policy
    from dnn.backends import load_export_manifest
    from dnn.profile import load_dnn_profile
    from hwmodels.model import PlatformModel
    from hwmodels.profile import load_platform
    from runtime.session import check_measured_backend

    if Path(run).is_dir() and (why := incomplete_reason(run)):
        raise UsageError(f"{run}: an incomplete run ({why}); train it again with --force")
    spec = load_platform(str(platform))
    backend = spec.measured.backend if spec.measured is not None else "torch"
    if backend not in BACKEND_REQUIREMENT:
        raise UsageError(
            f"--platform {platform}: measured with --backend {backend}; a bundle runs an export "
            f"(profile with --backend {' or '.join(BACKEND_REQUIREMENT)} --export DIR)"
        )
    manifest = load_export_manifest(backend, export)
    check_measured_backend(spec, str(platform), backend, manifest["weights_sha256"])
    load_policy(run, PlatformModel(spec, load_dnn_profile()))  # the policy decides for this board
    return spec, backend, manifest


def _copy_sources(dest: Path) -> None:
    """The project's packages (source and package data, not the torch weights) into ``dest``."""
    root = Path(__file__).resolve().parents[1]
    for package in PACKAGES:
        for f in sorted((root / package).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and not f.name.endswith(SKIP_SUFFIXES):
                target = dest / f.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
