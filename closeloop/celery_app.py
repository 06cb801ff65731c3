"""Production on Celery: the app, its queues and the reliability settings.

Delivery is at least once, and every task is idempotent, so the settings choose
"never lose" over "never repeat":
- late acknowledgement and reject-on-worker-lost: a task whose worker dies (SIGKILL,
  OOM, a lost machine) goes back to the queue instead of vanishing;
- prefetch 1: a worker holds only the task it runs, so nothing waits behind a slow one;
- JSON only: tasks carry ids, never pickled objects;
- one queue per kind of work, so a slow PDF never delays a Slack post;
- the broker's visibility timeout is longer than any task may run (the hard time
  limit), and no task is ever sent with a countdown or an ETA: what is due later waits
  in the outbox (`available_at`) or is found by a beat tick, never in the broker.

`celery -A closeloop.celery_app worker|beat` finds `app` here; `closeloop worker` and
`closeloop beat` are the same with the queues and options the Procfile wants."""
from __future__ import annotations

from celery import Celery
from kombu import Queue

from closeloop.config import Settings, load_settings
from closeloop.schedule import TICKS

# The queues, by kind of work. "control" carries the beat's ticks and the outbox
# dispatch, so they never wait behind deliveries.
QUEUES = ("control", "slack", "mail", "pdf", "billing", "default")

# Outbox kinds by queue; a kind not listed goes to "default".
_KIND_QUEUES = {
    "slack.": "slack",
    "email.": "mail",
    "invoice.deliver": "pdf",        # renders the invoice PDF
    "esign.send": "pdf",             # renders the quote PDF for the envelope
    "payment.": "billing",
    "license.": "billing",
    "pipeline.": "billing",
    "collect.": "billing",
    "esign.": "billing",             # a Connect notice applies the signature and what follows it
}


def queue_for(kind: str) -> str:
    for prefix, queue in _KIND_QUEUES.items():
        if kind == prefix or (prefix.endswith(".") and kind.startswith(prefix)):
            return queue
    return "default"


def make_app(settings: Settings | None = None) -> Celery:
    app = Celery("closeloop", include=["closeloop.tasks"])
    configure(app, settings or load_settings())
    return app


def configure(app: Celery, settings: Settings) -> None:
    """Apply the settings to the app (the worker's env at import; a test's or a web
    process's own settings when they differ)."""
    if settings.celery_task_seconds >= settings.celery_visibility_seconds:
        raise ValueError("CLOSELOOP_CELERY_TASK_SECONDS must be below CLOSELOOP_CELERY_VISIBILITY_SECONDS: "
                         "a task still running when the broker redelivers it would run twice at once")
    if settings.relay_lease_seconds >= settings.celery_visibility_seconds:
        raise ValueError("CLOSELOOP_RELAY_LEASE_SECONDS must be below CLOSELOOP_CELERY_VISIBILITY_SECONDS")
    app.conf.update(
        broker_url=settings.broker_url or "redis://127.0.0.1:6379/0",
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.celery_visibility_seconds},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None,
        task_time_limit=settings.celery_task_seconds,
        task_soft_time_limit=max(1, settings.celery_task_seconds - 5),
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="default",
        task_routes={name: {"queue": "control"} for name in ("closeloop.dispatch", "closeloop.tick", "closeloop.reclaim")},
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_schedule=beat_schedule(settings),
    )


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """The one beat schedule: the outbox dispatch and every tick of closeloop/schedule.py.
    A tick that waited longer than its own period expires instead of piling up."""
    table: dict[str, dict[str, object]] = {
        "dispatch": {"task": "closeloop.dispatch", "schedule": settings.dispatch_seconds,
                     "options": {"queue": "control", "expires": max(1.0, settings.dispatch_seconds * 5)}},
    }
    for tick in TICKS:
        every = tick.every(settings)
        table[tick.name] = {"task": "closeloop.tick", "schedule": every, "args": (tick.name,),
                            "options": {"queue": "control", "expires": every}}
    return table


app = make_app()
