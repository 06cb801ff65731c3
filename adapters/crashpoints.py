"""Instrumented crash points: where the crash-point sweep kills a worker with SIGKILL.

Off unless CLOSELOOP_CRASHPOINTS names a folder (the sweep's tests and benchmarks set
it; production never does), and then one dictionary lookup per point. The folder holds
`plan.json`, a list of "point:kind:deal" names; each fires once, ever: the first
process to reach it creates `fired/<name>` (O_EXCL, so across processes and restarts)
and kills itself on the spot, the way a machine dies, with no cleanup and no ack.

"point:kind:deal@n" fires at the n-th time that point is reached for that kind and
deal (a deal sends several emails; the sweep picks which one): every reach takes the
next free `seen/<name>@k` file, so the count holds across processes too.

The relay says which message is being delivered (`delivering`), so a point inside an
adapter, where the external effect has happened but is not yet recorded, names only
itself: `crashpoint("smtp.accepted")`."""
from __future__ import annotations

import contextvars
import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_FOLDER = os.environ.get("CLOSELOOP_CRASHPOINTS")
_plan: tuple[float, frozenset[str]] | None = None
_current: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar("closeloop_crash_delivery",
                                                                                 default=None)


@contextmanager
def delivering(delivery: Any) -> Iterator[None]:
    """The message whose delivery runs inside: the kind and deal the adapters' points name."""
    if not _FOLDER:
        yield
        return
    token = _current.set((delivery.kind, delivery.deal_id))
    try:
        yield
    finally:
        _current.reset(token)


def crashpoint(point: str, delivery: Any = None) -> None:
    """Die here if the plan says so for this point, this kind of message and this deal."""
    if not _FOLDER:
        return
    if delivery is not None:
        kind, deal_id = delivery.kind, delivery.deal_id
    elif (current := _current.get()) is not None:
        kind, deal_id = current
    else:
        return
    name = f"{point}:{kind}:{deal_id}"
    plan = _planned()
    if name in plan:
        _fire(name)
    elif f"{name}@" in _prefixes(plan):
        reach = _count_reach(name)
        if f"{name}@{reach}" in plan:
            _fire(f"{name}@{reach}")


def _fire(name: str) -> None:
    fired = Path(_FOLDER or "") / "fired"
    fired.mkdir(exist_ok=True)
    try:
        os.close(os.open(fired / name.replace("/", "_"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # fired already: this is the run after the crash
    os.kill(os.getpid(), signal.SIGKILL)


def _count_reach(name: str) -> int:
    """This reach's number (1, 2, …) for the name, counted across processes."""
    seen = Path(_FOLDER or "") / "seen"
    seen.mkdir(exist_ok=True)
    reach = 1
    while True:
        try:
            os.close(os.open(seen / f"{name.replace('/', '_')}@{reach}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return reach
        except FileExistsError:
            reach += 1


def _prefixes(plan: frozenset[str]) -> frozenset[str]:
    return _plan_prefixes if _plan_prefixes_of is plan else _index(plan)


_plan_prefixes_of: frozenset[str] | None = None
_plan_prefixes: frozenset[str] = frozenset()


def _index(plan: frozenset[str]) -> frozenset[str]:
    global _plan_prefixes_of, _plan_prefixes
    _plan_prefixes_of = plan
    _plan_prefixes = frozenset(entry.rpartition("@")[0] + "@" for entry in plan if "@" in entry)
    return _plan_prefixes


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
