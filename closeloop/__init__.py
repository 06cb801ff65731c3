"""The composition root: configuration, bootstrap, the outbox relay and the CLI."""
