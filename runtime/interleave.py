"""A live comparison that tells the truth: several controllers on the same requests, interleaved.

Run one after the other, controllers meet a machine that drifts between their runs (caches,
thermal state, other tenants of a VM, a load schedule at another phase). Here every controller
has its own :class:`runtime.session.LiveSession` (its own model, scorer, controller state and
log) and they take turns in short blocks of the budget trace: block ``j`` (requests
``j*B .. j*B+B-1``) runs for the first controller, then the same requests for the second, and so
on, while one load generator follows the schedule on one clock for all. So each controller
answers the same requests, and meets each load phase for about the same share of its requests.
The trace's clock runs across turns: a turn's first request comes a period after the previous
turn's last one and wakes from a sleep, as every other request does.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, closing
from pathlib import Path

from dnn.errors import Terminated
from dnn.progress import progress as progress_bar
from hwmodels.profile import load_platform
from runtime.board import units_of_spec
from runtime.loadgen import LoadGenerator, load_schedule
from runtime.session import LiveRun, LiveSession, open_log, serve_requests
from runtime.sysfs import LiveError, Sysfs, restore_on_exit

#: requests per turn: short enough that drift affects every controller alike, long enough that
#: a switch between controllers (another process state, another thread count) is rare
DEFAULT_BLOCK = 20


def compare_interleaved(
    runs: list[tuple[str, str, Path]],
    platform: str,
    budgets: str | os.PathLike,
    load: str | os.PathLike | None = None,
    load_repeat_s: float | None = None,
    block: int = DEFAULT_BLOCK,
    duration_s: float | None = None,
    progress: bool = True,
    fs: Sysfs | None = None,
    **session_kwargs,
) -> list[LiveRun]:
    """Run every controller live on one budget trace and load schedule, in turns of ``block`` requests.

    :param runs: (controller, label for the report or ``""``, JSON-lines log path) per controller
    :param load: load schedule CSV, followed by one generator for all controllers
    :param load_repeat_s: repeat the schedule every this many seconds (default: its last rows hold)
    :param block: requests per turn
    :param duration_s: seconds per controller (the whole run takes about that times the
        number of controllers); default: one pass of the trace each
    :param session_kwargs: the rest of :class:`LiveSession`'s arguments (``allow_dvfs``,
        ``data``, ``weights``, ``dnn_profile``, ``objective``, ``min_accuracy``)
    :return: one :class:`LiveRun` per controller, in order
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    fs = fs or Sysfs("/")
    unit_cpus = {u.name: u.cpus for u in units_of_spec(load_platform(platform), fs)}
    generator = LoadGenerator(load_schedule(load, unit_cpus, load_repeat_s), unit_cpus) if load else None
    with ExitStack() as stack:
        if generator is not None:
            stack.callback(restore_on_exit(generator))
        turns = []
        for controller, label, log in runs:
            session = stack.enter_context(
                LiveSession(controller, platform, budgets, fs=fs, generator=generator, **session_kwargs)
            )
            session.run.controller = label or session.run.controller
            for note in session.notes:
                print(f"dynscale: {session.run.controller}: {note}", file=sys.stderr)
            turns.append((session, stack.enter_context(open_log(log))))
        total = len(turns[0][0].trace) * len(turns) if duration_s is None else None
        bar = stack.enter_context(closing(progress_bar(total, "compare --live", progress, "req")))
        try:
            _take_turns(turns, generator, bar, block, duration_s)
        except (KeyboardInterrupt, Terminated) as exc:
            n = len(turns[0][0].run.log)
            raise type(exc)(f"compare --live stopped after {n} requests per controller; every log holds each of them") from None
    out = [session.run for session, _ in turns]
    if not out[0].log.actions:
        raise LiveError("no request ran (empty trace or zero duration)")
    return out


def _take_turns(turns, generator: LoadGenerator | None, bar, block: int, duration_s: float | None) -> None:
    """Blocks of the trace in turn until every controller has served it once (or ``duration_s`` each)."""
    if generator is not None:
        generator.start()
    for session, _ in turns:
        session.start()
    clock = turns[0][0]
    trace_len = len(clock.trace)
    limit = None if duration_s is None else duration_s * len(turns)
    due = None  # when the next request is due, whichever controller serves it: every turn keeps the trace's pacing
    while True:
        done = len(clock.run.log)
        if (duration_s is None and done >= trace_len) or (limit is not None and clock.elapsed_s() >= limit):
            return
        n = block if duration_s is not None else min(block, trace_len - done)
        for session, out in turns:
            due = serve_requests(session, out, bar, n, None, due)
