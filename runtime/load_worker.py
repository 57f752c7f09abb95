"""One background-load worker process: ``python -m runtime.load_worker MEM_INTENSITY``.

Alternates compute slices (a pure-Python integer loop: one busy core, cache-resident) with
memory-streaming slices (copies of a 64 MB buffer, larger than the last-level caches of the
boards this targets): ``MEM_INTENSITY`` in [0, 1] is the fraction of slices that stream. Dies
with its parent (``PR_SET_PDEATHSIG``), so a killed controller leaves no worker behind.
Standard library only, to start fast.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
BUFFER_BYTES = 64 << 20


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent check below still applies
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def main(argv: list[str]) -> None:
    mem = float(argv[0])
    parent = int(argv[1]) if len(argv) > 1 else os.getppid()
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    src = bytearray(BUFFER_BYTES) if mem > 0 else b""
    dst = bytearray(BUFFER_BYTES) if mem > 0 else b""
    acc = 0.0
    while True:
        acc += mem
        if acc >= 1.0:
            acc -= 1.0
            dst[:] = src  # memcpy of 64 MB: streams through memory
        else:
            x = 0
            for i in range(70_000):  # about as long as one copy on an x86 core
                x += i


if __name__ == "__main__":
    main(sys.argv[1:])
