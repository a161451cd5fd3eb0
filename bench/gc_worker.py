"""``overdue worker`` with the duration of each of its full garbage collections logged.

    .venv/bin/python bench/gc_worker.py      # as `overdue worker`, same environment

``bench/scale.py`` runs its workers through this script. CPython's cyclic collector stops the
whole process while it runs (the collecting thread holds the GIL), and a full collection (the
oldest generation) walks every tracked object: its pause grows with what the worker holds, most
of all its cached workflows. Each one is logged on stderr as ``gc-full <wall ms> <cpu ms>``.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from overdue.cli import main

_started: list[float] = []


def _watch(phase: str, info: dict[str, Any]) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _started[:] = [time.perf_counter(), time.thread_time()]
    elif _started:
        wall = (time.perf_counter() - _started[0]) * 1000
        cpu = (time.thread_time() - _started[1]) * 1000
        print(f"gc-full {wall:.1f} {cpu:.1f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    gc.callbacks.append(_watch)
    sys.argv = ["overdue", "worker"]
    main()
