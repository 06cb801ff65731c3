"""Instrumented crash points: where the crash-point sweep kills a worker with SIGKILL.

Off unless CLOSELOOP_CRASHPOINTS names a folder (the sweep's tests and benchmarks set
it; production never does), and then one dictionary lookup per point. The folder holds
`plan.json`, a list of "point:kind:deal" names; each fires once, ever: the first
process to reach it creates `fired/<name>` (O_EXCL, so across processes and restarts)
and kills itself on the spot, the way a machine dies, with no cleanup and no ack."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

_FOLDER = os.environ.get("CLOSELOOP_CRASHPOINTS")
_plan: tuple[float, frozenset[str]] | None = None


def crashpoint(point: str, delivery: Any) -> None:
    """Die here if the plan says so for this point, this kind of message and this deal."""
    if not _FOLDER:
        return
    name = f"{point}:{delivery.kind}:{delivery.deal_id}"
    if name not in _planned():
        return
    fired = Path(_FOLDER) / "fired"
    fired.mkdir(exist_ok=True)
    try:
        os.close(os.open(fired / name.replace("/", "_"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # fired already: this is the run after the crash
    os.kill(os.getpid(), signal.SIGKILL)


def _planned() -> frozenset[str]:
    global _plan
    path = Path(_FOLDER or "") / "plan.json"
    try:
        stamp = path.stat().st_mtime
    except FileNotFoundError:
        return frozenset()
    if _plan is None or _plan[0] != stamp:
        _plan = (stamp, frozenset(json.loads(path.read_text())))
    return _plan[1]
