"""The file sink writes a redelivered message once, whichever process delivers it: Celery's
pool processes each have a sink of their own on the same folder (found by the
broker-restart fault case, where a redelivery in the other process wrote a line twice)."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

from adapters.file_sink import FileSink
from flows.outbox import Delivery


def delivery(key: str, deal_id: int = 1) -> Delivery:
    return Delivery(id=deal_id, kind="esign.send", payload={"deal": deal_id}, idempotency_key=key, attempt=1,
                    deal_id=deal_id)


def test_a_redelivery_is_written_once_by_the_same_sink(tmp_path):
    sink = FileSink(tmp_path)
    assert sink.write(delivery("esign.send:1"), "n") is True
    assert sink.write(delivery("esign.send:1"), "n") is False
    assert [r["key"] for r in sink.read("esign.send")] == ["esign.send:1"]


def test_a_redelivery_to_another_process_whose_view_is_older_is_not_written_again(tmp_path):
    first, second = FileSink(tmp_path), FileSink(tmp_path)
    second.write(delivery("esign.send:2", 2), "n")  # the second process has read the file already
    first.write(delivery("esign.send:1"), "n")
    assert second.write(delivery("esign.send:1"), "n") is False  # redelivered to the second process
    assert second.write(delivery("esign.send:3", 3), "n") is True
    assert [r["key"] for r in FileSink(tmp_path).read("esign.send")] == ["esign.send:2", "esign.send:1",
                                                                         "esign.send:3"]


def _deliver_all(folder: str, keys: list[str]) -> int:
    sink = FileSink(Path(folder))
    return sum(sink.write(delivery(key, int(key.rsplit(":", 1)[1])), "n") for key in keys)


def test_processes_racing_on_the_same_messages_write_each_once(tmp_path):
    keys = [f"esign.send:{n}" for n in range(200)]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        written = pool.starmap(_deliver_all, [(str(tmp_path), keys)] * 4)
    assert sum(written) == len(keys)
    lines = FileSink(tmp_path).read("esign.send")
    assert sorted(r["key"] for r in lines) == sorted(keys)
