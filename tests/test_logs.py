"""Structured logs: a line written inside a ledger step that takes a deal carries the
deal, whoever ran the step (a Slack click, a webhook, the relay); other lines do not
invent one."""
from __future__ import annotations

import io
import json
import logging

from closeloop.logs import JsonLines, deal_context, request_scope, setup

log = logging.getLogger("closeloop.test_logs")


def lines_of(run) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        run()
    finally:
        log.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def about_a_deal(tx, deal_id: int, note: str) -> None:
    log.info("working on it: %s", note)


def about_nothing(tx, note: str) -> None:
    log.info("no deal here: %s", note)


def test_a_step_that_takes_a_deal_logs_with_it_positionally_or_by_name(services):
    lines = lines_of(lambda: (services.ledger.run(about_a_deal, 42, "first"),
                              services.ledger.run_alone(about_a_deal, deal_id=7, note="second"),
                              services.ledger.run(about_nothing, "third")))
    assert [(line["msg"], line.get("deal")) for line in lines] == [
        ("working on it: first", 42), ("working on it: second", 7), ("no deal here: third", None)]
    assert all(line["level"] == "info" and line["logger"] == "closeloop.test_logs" for line in lines)


def test_the_step_context_adds_to_what_the_caller_set_and_is_gone_after(services):
    def run() -> None:
        with deal_context(task="t-1", kind="invoice.deliver"):
            services.ledger.run(about_a_deal, 9, "inside")
            log.info("after the step")
    inside, after = lines_of(run)
    assert (inside["deal"], inside["task"], inside["kind"]) == (9, "t-1", "invoice.deliver")
    assert "deal" not in after and after["task"] == "t-1"


def test_in_a_request_scope_the_first_deal_named_stays_for_the_rest_of_the_request(services):
    def run() -> None:
        with request_scope():
            log.info("before any step")
            services.ledger.run(about_a_deal, 5, "inside")
            services.ledger.run(about_a_deal, 6, "another deal's step")
            log.info("after the steps")
        log.info("after the request")
    lines = lines_of(run)
    assert [(line["msg"], line.get("deal")) for line in lines] == [
        ("before any step", None), ("working on it: inside", 5), ("working on it: another deal's step", 6),
        ("after the steps", 5), ("after the request", None)]


def test_a_verbose_process_logs_its_own_info_but_not_the_pdf_subsetter_chatter():
    root, fonttools = logging.getLogger(), logging.getLogger("fontTools")
    handlers, levels = root.handlers[:], (root.level, fonttools.level)
    try:
        setup(verbose=True, json_lines=True)
        assert logging.getLogger("closeloop.relay").isEnabledFor(logging.INFO)
        assert not logging.getLogger("fontTools.subset").isEnabledFor(logging.INFO)
        assert logging.getLogger("fontTools.subset").isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:] = handlers
        root.setLevel(levels[0])
        fonttools.setLevel(levels[1])
