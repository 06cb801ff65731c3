"""Start a Celery process again, in place, when it stops on an error it did not recover from.

Celery's worker can stop for good on a broker restart: with celery 5.7 / kombu 5.7 the
consumer's clean-up after a lost connection sometimes raises (AttributeError while
restoring the unacknowledged messages), the worker logs "Unrecoverable error" and exits.
Found by the broker-restart fault case, about one restart in six. A platform's process
manager would start it again, but honcho (the Procfile on one machine) stops every
process when one exits. So `closeloop worker` and `closeloop beat` start themselves
again: the same command, exec'd in the same process (same pid, so a supervisor or a
test holding it sees one long-lived process), after a backoff that grows while the
restarts come quickly. A stop that was asked for (SIGTERM, SIGINT, `celery control
shutdown`) ends the process as before."""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable

log = logging.getLogger("closeloop.respawn")

RESTARTS_ENV = "CLOSELOOP_QUICK_RESTARTS"  # restarts in a row, each after a short run
STEADY_SECONDS = 60.0  # a run this long was healthy: the next restart waits the least
MAX_DELAY_SECONDS = 30.0


def delay_before_restart(quick_restarts: int) -> float:
    """1 s, 2 s, 4 s… up to 30 s: a process that keeps failing is not restarted in a hot loop."""
    return min(MAX_DELAY_SECONDS, 2.0 ** quick_restarts)


def keep_running(name: str, run: Callable[[], int | None]) -> int:
    """Run `run` (a Celery process's main, returning its exit code); when it ends on an
    error, exec this same command again after the backoff. Returns only a clean exit."""
    started = time.monotonic()
    try:
        code = run()
    except Exception:  # noqa: BLE001 — whatever stopped it, the answer is the same: start again
        log.exception("%s stopped on an error", name)
        code = 1
    if not code:  # 0 or None: asked to stop
        return 0
    quick = int(os.environ.get(RESTARTS_ENV, "0"))
    if time.monotonic() - started >= STEADY_SECONDS:
        quick = 0
    delay = delay_before_restart(quick)
    log.error("%s exited with code %s; starting it again in %g s (restart %d in a row)", name, code, delay, quick + 1)
    _restart(delay, quick + 1)
    return code  # not reached: _restart replaces the process


def _restart(delay: float, quick: int) -> None:
    # Celery's own signal handlers outlive its run; during the wait a SIGTERM must simply end us.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)
    time.sleep(delay)
    os.environ[RESTARTS_ENV] = str(quick)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # Our sockets and files are not inherited (Python opens them close-on-exec), so the
    # new program starts clean: new broker and database connections, a new pool.
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
