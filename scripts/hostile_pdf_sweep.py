"""Read every PDF of a hostile corpus through the sandbox and check each ends in a result
or a typed error within the limits.

    .venv/bin/python scripts/hostile_pdf_sweep.py ../shared/corpus/hostile_pdfs

Prints per file: outcome (ok or the error code), seconds, the child's peak RSS. Exits
non-zero when the caller crashed, a read exceeded the limits, or an outcome the
corpus's MANIFEST.md implies was not met (active content -> PDF_ACTIVE_CONTENT, an
incremental update read as a signed document -> PDF_MODIFIED_AFTER_SIGNING, an empty
file -> PDF_NO_TEXT/PDF_MALFORMED, a file pdfplumber reads as 0 chars -> not "ok" …)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.pdf_sandbox import run_measured  # noqa: E402
from closeloop.config import load_settings  # noqa: E402
from closeloop.pdf_limits import pdf_limits  # noqa: E402

SLACK_SECONDS = 5.0   # process start and kill on top of the wall-clock limit
ERRORS = "any typed error"


def manifest(corpus: Path) -> dict[str, tuple[str, str]]:
    """file name -> (what is wrong, pdfplumber's outcome), from the MANIFEST table."""
    rows = {}
    text = (corpus / "MANIFEST.md").read_text() if (corpus / "MANIFEST.md").exists() else ""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].endswith(".pdf"):
            rows[cells[0]] = (cells[2].lower(), cells[-1].lower())
    return rows


def expected(name: str, wrong: str, plumber: str) -> set[str] | str | None:
    """The outcomes that count as right for this file (None: any result or typed error)."""
    if "active_content" in name or re.search(r"javascript|launch action", wrong):
        return {"PDF_ACTIVE_CONTENT"}
    if "not_a_pdf" in name:
        return {"PDF_NOT_A_PDF"}
    if "empty" in name or wrong == "zero bytes":
        return {"PDF_NO_TEXT", "PDF_MALFORMED"}
    if "encrypted" in wrong and "bogus" not in wrong:
        return {"PDF_ENCRYPTED"}
    if "bomb" in name or "bomb" in wrong:
        return {"PDF_TOO_LARGE", "PDF_TIMEOUT"}
    if plumber == "timeout":
        return ERRORS
    if "0 chars" in plumber:
        return {"PDF_NO_TEXT", "PDF_MALFORMED", "PDF_ACTIVE_CONTENT", "PDF_ENCRYPTED"}
    return None


def main(corpus: Path) -> int:
    limits = pdf_limits(load_settings())
    rows, failures = manifest(corpus), []
    files = sorted(corpus.glob("*.pdf"))
    reads = [(f, "parsers.pdf_text:read_text", "text") for f in files]
    reads += [(f, "parsers.pdf_text:read_signed_text", "signed") for f in files if "incremental_update" in f.name]
    print(f"{'file':58} {'as':6} {'outcome':28} {'seconds':>7} {'peak RSS':>9}")
    for path, function, mode in reads:
        wrong, plumber = rows.get(path.name, ("", ""))
        want = {"PDF_MODIFIED_AFTER_SIGNING"} if mode == "signed" else expected(path.name, wrong, plumber)
        try:
            outcome = run_measured(function, path.read_bytes(), limits=limits)
        except Exception as error:  # noqa: BLE001 - the whole point: nothing may escape
            failures.append(f"{path.name}: the caller crashed: {type(error).__name__}: {error}")
            print(f"{path.name:58} {mode:6} CRASHED {error}")
            continue
        code = outcome.error.code.value if outcome.error else "ok"
        rss = outcome.peak_rss_bytes
        print(f"{path.name:58} {mode:6} {code:28} {outcome.seconds:7.2f} "
              f"{(f'{rss / 2**20:.0f} MiB' if rss else '-'):>9}", flush=True)
        if outcome.seconds > limits.seconds + SLACK_SECONDS:
            failures.append(f"{path.name}: {outcome.seconds:.1f} s is over the {limits.seconds:g} s limit")
        if rss and rss > limits.memory_bytes:
            failures.append(f"{path.name}: peak RSS {rss >> 20} MiB is over the cap")
        if want == ERRORS and code == "ok" or isinstance(want, set) and code not in want:
            failures.append(f"{path.name} ({mode}): got {code}, expected {want}")
    print(f"\n{len(reads)} reads of {len(files)} files; {len(failures)} failure(s)")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures or not files else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))
