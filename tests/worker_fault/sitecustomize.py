"""Put on PYTHONPATH of a `closeloop worker` by a test: the Celery worker stops once on an
"Unrecoverable error", the way celery 5.7 does after some broker restarts (see
closeloop/respawn.py), but on cue instead of one restart in six.

CLOSELOOP_TEST_WORKER_FAULT names a file: the first worker to be ready creates it and,
a moment later, raises from its event loop (an AssertionError, which kombu's hub lets
through, so Celery's worker stops with exit code 1). Only the first: the file exists
afterwards, so the worker started again runs normally."""
import os

_FLAG = os.environ.get("CLOSELOOP_TEST_WORKER_FAULT")

if _FLAG:
    from celery import signals

    def _fail_soon(sender=None, **_: object) -> None:
        try:
            os.close(os.open(_FLAG, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return

        def fail() -> None:
            raise AssertionError("injected: the worker's event loop failed")
        sender.timer.call_after(float(os.environ.get("CLOSELOOP_TEST_WORKER_FAULT_AFTER", "1")), fail)

    signals.worker_ready.connect(_fail_soon, weak=False)
