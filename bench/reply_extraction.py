"""Reply-extraction accuracy and time per message on jsonl corpora of expected text,
closeloop beside the library baselines run in the same process on the same cases.

    .venv/bin/python -m bench.reply_extraction [CORPUS_DIR]      (default ../shared/corpus/email)
    .venv/bin/python scripts/score_replies.py CORPUS_DIR

Case format (the corpus README): `input`, `content_type` ("text/html" for HTML bodies),
`strips_signature` (the expected text has the signature removed: closeloop's `body` is
compared; otherwise its `reply`, signature kept), `expect` (checks), `excluded`.
Baselines are used the way their authors meant for each case: talon's quotation
extraction, plus its signature extraction when the case strips signatures;
email-reply-parser and mail-parser-reply always strip both. A baseline that is not
installed (the `bench` extra) is reported as missing, not scored."""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

Extractor = Callable[[dict], str]


def case_passes(output: str, checks: list[dict]) -> bool:
    output = (output or "").replace("\r\n", "\n")
    for check in checks:
        op, value = check["op"], check["value"].replace("\r\n", "\n")
        if op == "equals":
            ok = output == value
        elif op == "equals_strip":
            ok = output.strip() == value.strip()
        elif op == "nows_equals":
            ok = "".join(output.split()) == "".join(value.split())
        elif op == "contains":
            ok = value in output
        elif op == "not_contains":
            ok = value not in output
        elif op == "startswith":
            ok = output.startswith(value)
        else:
            raise ValueError(f"unknown check op {op!r}")
        if not ok:
            return False
    return True


def load_cases(corpus_dir: Path) -> list[dict]:
    cases = []
    for path in sorted(corpus_dir.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                case = json.loads(line)
                case.setdefault("corpus", path.stem)
                case.setdefault("id", f"{path.stem}#{number}")
                cases.append(case)
    return cases


def _is_html(case: dict) -> bool:
    return case.get("content_type") == "text/html"


def closeloop_extractor() -> Extractor:
    from parsers.email_reply import extract_reply

    def run(case: dict) -> str:
        reply = extract_reply("", case["input"]) if _is_html(case) else extract_reply(case["input"])
        return reply.body if case.get("strips_signature") else reply.reply
    return run


def talon_extractor() -> Extractor:
    import talon
    from talon import quotations
    from talon.signature.bruteforce import extract_signature
    from talon.utils import html_to_text
    talon.init()

    def run(case: dict) -> str:
        if _is_html(case):
            # talon answers HTML; the cases compare text, so its own html_to_text reads it.
            return (html_to_text(quotations.extract_from_html(case["input"])) or b"").decode("utf-8")
        text = quotations.extract_from_plain(case["input"])
        return extract_signature(text)[0] if case.get("strips_signature") else text
    return run


def email_reply_parser_extractor() -> Extractor:
    from email_reply_parser import EmailReplyParser

    return lambda case: EmailReplyParser.parse_reply(case["input"])


def mail_parser_reply_extractor() -> Extractor:
    from mailparser_reply import EmailReplyParser
    parser = EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs"])

    return lambda case: parser.parse_reply(text=case["input"]) or ""


def quotequail_extractor() -> Extractor:
    import quotequail

    def run(case: dict) -> str:
        if _is_html(case):
            parts = quotequail.quote_html(case["input"])
        else:
            parts = quotequail.quote(case["input"])
        return "".join(text for new, text in parts if new)
    return run


EXTRACTORS: dict[str, Callable[[], Extractor]] = {
    "closeloop": closeloop_extractor,
    "talon 1.4.4": talon_extractor,
    "email-reply-parser": email_reply_parser_extractor,
    "mail-parser-reply": mail_parser_reply_extractor,
    "quotequail": quotequail_extractor,
}


def score(cases: list[dict], extractor: Extractor) -> tuple[dict[str, list[int]], float, list[str]]:
    """Per corpus [passed, total], milliseconds per message, ids of failed cases."""
    per_corpus: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    failed: list[str] = []
    started = time.perf_counter()
    for case in cases:
        try:
            output = extractor(case)
        except Exception:  # a baseline crashing on a case fails that case
            output = None
        ok = output is not None and case_passes(output, case["expect"])
        per_corpus[case["corpus"]][0] += ok
        per_corpus[case["corpus"]][1] += 1
        if not ok:
            failed.append(case["id"])
    elapsed_ms = (time.perf_counter() - started) * 1000 / max(1, len(cases))
    return dict(per_corpus), elapsed_ms, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus_dir", nargs="?", default="../shared/corpus/email")
    parser.add_argument("--failures", action="store_true", help="list closeloop's failed case ids")
    args = parser.parse_args(argv)
    corpus_dir = Path(args.corpus_dir)
    if not corpus_dir.is_dir():
        print(f"no corpus at {corpus_dir}", file=sys.stderr)
        return 2
    all_cases = load_cases(corpus_dir)
    cases = [case for case in all_cases if not case.get("excluded")]
    corpora = sorted({case["corpus"] for case in cases})
    print(f"{len(cases)} cases from {corpus_dir} ({len(all_cases) - len(cases)} excluded by their upstream suite)")
    results = {}
    for name, make in EXTRACTORS.items():
        try:
            extractor = make()
        except ImportError as error:
            print(f"  {name}: not installed ({error.name}); `pip install -e '.[bench]'`")
            continue
        except Exception as error:  # a baseline that cannot start is reported, not fatal
            print(f"  {name}: cannot start ({type(error).__name__}: {error})")
            continue
        extractor(cases[0])  # warm-up: model and pattern loading is not per-message time
        results[name] = score(cases, extractor)
    header = f"{'extractor':<20}" + "".join(f"{c:>18}" for c in corpora) + f"{'all':>12}{'ms/msg':>9}"
    print(header)
    for name, (per_corpus, ms, _) in results.items():
        cells = "".join(f"{per_corpus[c][0]:>4}/{per_corpus[c][1]:<3}{per_corpus[c][0] / per_corpus[c][1]:>6.0%}    "
                        for c in corpora)
        passed = sum(v[0] for v in per_corpus.values())
        print(f"{name:<20}{cells}{passed / len(cases):>10.0%}{ms:>9.2f}")
    if "closeloop" in results:
        ours = results["closeloop"][0]
        for corpus in corpora:
            best_name, best = max(((n, r[0][corpus][0]) for n, r in results.items() if n != "closeloop"),
                                  key=lambda item: item[1], default=("none", 0))
            verdict = "better" if ours[corpus][0] > best else "tied" if ours[corpus][0] == best else "WORSE"
            print(f"  {corpus}: closeloop {ours[corpus][0]} vs best baseline {best_name} {best} -> {verdict}")
        ms = results["closeloop"][1]
        for name, (_, other_ms, _) in results.items():
            if name != "closeloop":
                print(f"  time: closeloop {ms:.2f} ms/msg, {name} {other_ms:.2f} ms/msg"
                      f" (ratio {ms / other_ms if other_ms else float('inf'):.2f})")
        if args.failures:
            for case_id in results["closeloop"][2]:
                print(f"  failed: {case_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
