"""`closeloop parse reply FILE --json` as a user runs it: a real process, real files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLOSELOOP = str(Path(sys.executable).with_name("closeloop"))
FIXTURES = Path(__file__).parent / "fixtures" / "email"
KEYS = {"reply", "body", "signature", "language", "intent", "auto_reply", "bounce"}
BOUNCE_KEYS = {"original_message_id", "recipient", "status", "permanent", "diagnostic"}


def parse_reply(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLOSELOOP, "parse", "reply", str(path), "--json", *extra],
                          capture_output=True, text=True, timeout=60)


def test_an_eml_reply_prints_exactly_the_documented_shape():
    done = parse_reply(FIXTURES / "signed_reply.eml")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == KEYS
    assert result == {
        "reply": "Dzień dobry,\n\nw załączniku podpisana oferta.\n\nPozdrawiam,\nJan Kowalski",
        "body": "Dzień dobry,\n\nw załączniku podpisana oferta.",
        "signature": "Pozdrawiam,\nJan Kowalski",
        "language": "pl",
        "intent": "signed_document",
        "auto_reply": False,
        "bounce": None,
    }


def test_a_bounce_prints_its_bounce_object():
    result = json.loads(parse_reply(FIXTURES / "dsn_5_1_1.eml").stdout)
    assert set(result["bounce"]) == BOUNCE_KEYS
    assert result["bounce"]["original_message_id"] == "<quote-q1001.42@closeloop.example>"
    assert result["bounce"]["permanent"] is True
    assert result["auto_reply"] is False


def test_an_auto_reply_is_flagged():
    assert json.loads(parse_reply(FIXTURES / "ooo_subject_de.eml").stdout)["auto_reply"] is True


def test_plain_text_that_is_not_mime_is_read_as_a_reply(tmp_path):
    path = tmp_path / "reply.txt"
    path.write_text("Could you change the quantity to 12?\n\nOn Tue, 5 Dec 2023 at 10:00, Sales "
                    "<s@example.com> wrote:\n> Your quote\n", encoding="utf-8")
    result = json.loads(parse_reply(path).stdout)
    assert result["reply"] == "Could you change the quantity to 12?"
    assert result["intent"] == "change_request"
    assert result["bounce"] is None and result["auto_reply"] is False


def test_a_missing_file_is_a_clear_error(tmp_path):
    done = parse_reply(tmp_path / "nope.eml")
    assert done.returncode != 0
    assert json.loads(done.stdout) == {"error": "unreadable", "message": done and json.loads(done.stdout)["message"]}
    assert "nope.eml" in json.loads(done.stdout)["message"]


def test_a_binary_file_and_an_empty_file_are_refused(tmp_path):
    done = parse_reply(FIXTURES / "binary.bin")
    assert done.returncode != 0 and json.loads(done.stdout)["error"] == "not_text"
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    done = parse_reply(empty)
    assert done.returncode != 0 and json.loads(done.stdout)["error"] == "empty"


def test_without_json_it_prints_for_people():
    done = subprocess.run([CLOSELOOP, "parse", "reply", str(FIXTURES / "human_outlook_reply.eml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "intent: change_request" in done.stdout
    assert "Could we get 12 seats instead of 10?" in done.stdout
