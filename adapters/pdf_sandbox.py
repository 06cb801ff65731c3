"""Every PDF is read in a separate worker process with a wall-clock limit and a memory
cap, so a hostile file (reference cycles, decompression bombs) costs a bounded amount
and never the caller.

    run("parsers.invoice_pdf:extract_invoice", pdf_bytes) -> whatever the function returns
    raises parsers.pdf_errors.PdfError (TIMEOUT, TOO_LARGE, …)

The function is named by "module:function" so only its name and bytes cross the
process boundary; its result must be picklable.

How: the cheap checks (size, magic bytes, %%EOF) run here; then a child forked from a
multiprocessing *forkserver* (which has pdfplumber imported already, so a child costs a
fork, not an interpreter start) sets RLIMIT_AS and RLIMIT_CPU on itself, runs the
bounded structure scan (encryption, reference cycles, bombs, active content) and then
the function. The parent waits at most `seconds` and SIGKILLs the child past that."""
from __future__ import annotations

import importlib
import logging
import math
import multiprocessing
import os
import resource
import signal
import time
from dataclasses import dataclass
from typing import Any

from parsers import pdf_structure
from parsers.pdf_errors import PdfError, PdfErrorCode


@dataclass(frozen=True)
class Limits:
    seconds: float = 20.0
    memory_bytes: int = 1 << 30
    max_file_bytes: int = 50 << 20

    @property
    def inflate_bytes(self) -> int:
        # Inflated streams get an eighth of the cap: pdfminer holds several copies of each.
        return self.memory_bytes // 8


@dataclass(frozen=True)
class Outcome:
    """What one sandboxed read came to, with what it cost (for the sweep and benchmarks)."""
    result: Any
    error: PdfError | None
    seconds: float
    peak_rss_bytes: int | None   # of the child; None when it could not be measured


# The forkserver imports these once; every child inherits them already loaded.
# Imported once by the forkserver, so a child starts with them loaded. "__main__" matters
# most: without it every child imported the main module again (the whole CLI, about 1.1 s).
PRELOAD = ["__main__", "parsers.pdf_structure", "parsers.pdf_text", "parsers.invoice_pdf", "parsers.signed_quote",
           "pdfplumber", "pypdf", "pypdfium2"]
_context: Any = None


def _ctx() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def run(function: str, pdf: bytes, *args: Any, limits: Limits = Limits()) -> Any:
    outcome = run_measured(function, pdf, *args, limits=limits)
    if outcome.error is not None:
        raise outcome.error
    return outcome.result


def run_measured(function: str, pdf: bytes, *args: Any, limits: Limits = Limits()) -> Outcome:
    started = time.monotonic()
    try:
        pdf_structure.precheck(pdf, limits.max_file_bytes)
    except PdfError as error:
        return Outcome(None, error, time.monotonic() - started, None)
    receive, send = _ctx().Pipe(duplex=False)
    child = _ctx().Process(target=_child, args=(send, function, pdf, args, limits), daemon=True)
    child.start()
    send.close()
    message, peak = None, None
    try:
        if receive.poll(limits.seconds):
            try:
                message = receive.recv()
            except (EOFError, OSError):
                message = None      # the child died without a word: see its exit status
        else:
            peak = _peak_rss(child.pid)
            child.kill()
            child.join()
            return Outcome(None, PdfError(PdfErrorCode.TIMEOUT, f"reading took longer than {limits.seconds:g} s"),
                           time.monotonic() - started, peak)
    finally:
        receive.close()
    child.join(5)
    if child.is_alive():
        child.kill()
        child.join()
    seconds = time.monotonic() - started
    if message is None:
        return Outcome(None, _died(child.exitcode, limits), seconds, peak)
    status, payload, peak = message
    if status == "ok":
        return Outcome(payload, None, seconds, peak)
    return Outcome(None, payload, seconds, peak)


def _died(exitcode: int | None, limits: Limits) -> PdfError:
    if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
        return PdfError(PdfErrorCode.TIMEOUT, f"reading used more than {limits.seconds:g} s of CPU")
    return PdfError(PdfErrorCode.MALFORMED, f"the PDF reader crashed on this file (exit status {exitcode})")


def _peak_rss(pid: int | None) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _child(send: Any, function: str, pdf: bytes, args: tuple, limits: Limits) -> None:
    logging.disable(logging.WARNING)   # pdfminer warns on every damaged file; the answer says it
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    cpu = math.ceil(limits.seconds) + 1   # a backstop: the parent's wall clock normally wins
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        pdf_structure.guard(pdf, limits.inflate_bytes)
        module, _, name = function.partition(":")
        message: tuple = ("ok", getattr(importlib.import_module(module), name)(pdf, *args))
    except PdfError as error:
        message = ("error", error)
    except MemoryError:
        message = ("error", PdfError(PdfErrorCode.TOO_LARGE,
                                     f"reading needs more than {limits.memory_bytes >> 20} MiB of memory"))
    except Exception as error:  # noqa: BLE001 - any parser failure on bad input is a typed answer
        message = ("error", classify(error))
    send.send(message + (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,))
    send.close()
    os._exit(0)   # no atexit work in a child that may be in a bad state


def classify(error: BaseException) -> PdfError:
    """pdfminer/pdfplumber exceptions on bad input, as our typed errors."""
    kind = type(error).__name__
    if kind in ("PDFPasswordIncorrect", "PDFEncryptionError", "PDFEncryptionWarning", "FileNotDecryptedError"):
        return PdfError(PdfErrorCode.ENCRYPTED, "the PDF is encrypted; we do not read password-protected files")
    if isinstance(error, RecursionError):
        return PdfError(PdfErrorCode.MALFORMED, "the PDF's structure nests too deeply (or loops)")
    detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
    return PdfError(PdfErrorCode.MALFORMED, f"the PDF could not be parsed ({kind}{': ' + detail if detail else ''})")
