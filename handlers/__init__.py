"""Every non-Slack way work enters: inbound email, webhooks, web routes, Celery tasks."""
