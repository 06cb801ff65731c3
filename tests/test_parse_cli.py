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
    from parsers.email_understanding import understand_message
    assert understand_message((FIXTURES / "ooo_subject_de.eml").read_bytes())["auto_reply"] is True


def test_plain_text_that_is_not_mime_is_read_as_a_reply():
    from parsers.email_understanding import understand_message
    result = understand_message("Could you change the quantity to 12?\n\nOn Tue, 5 Dec 2023 at 10:00, Sales "
                                "<s@example.com> wrote:\n> Your quote\n".encode())
    assert result["reply"] == "Could you change the quantity to 12?"
    assert result["intent"] == "change_request"
    assert result["bounce"] is None and result["auto_reply"] is False


def test_a_missing_file_is_a_clear_error(tmp_path):
    done = parse_reply(tmp_path / "nope.eml")
    assert done.returncode != 0
    error = json.loads(done.stdout)
    assert set(error) == {"error", "message"} and error["error"] == "unreadable"
    assert "nope.eml" in error["message"]


def test_a_binary_file_is_refused():
    done = parse_reply(FIXTURES / "binary.bin")
    assert done.returncode != 0 and json.loads(done.stdout)["error"] == "not_text"


def test_an_empty_file_is_refused_in_process_too():
    import pytest

    from parsers.email_understanding import UnreadableMessage, understand_message
    with pytest.raises(UnreadableMessage) as refused:
        understand_message(b"  \n")
    assert refused.value.code == "empty"


def test_without_json_it_prints_for_people():
    done = subprocess.run([CLOSELOOP, "parse", "reply", str(FIXTURES / "human_outlook_reply.eml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "intent: change_request" in done.stdout
    assert "Could we get 12 seats instead of 10?" in done.stdout


def test_understanding_tells_a_message_from_a_text_that_starts_like_one():
    from parsers.email_understanding import understand_message
    note = understand_message("Note: we will sign on Monday.\n\nThanks,\nAnn\n".encode())
    assert note["reply"].startswith("Note: we will sign on Monday.")
    arc = understand_message(b"ARC-Seal: i=1; a=rsa-sha256; cv=none\nFrom: a@example.com\nSubject: Re: Q\n\n"
                             b"Please unsubscribe me.\n")
    assert arc["reply"] == "Please unsubscribe me." and arc["intent"] == "unsubscribe"
