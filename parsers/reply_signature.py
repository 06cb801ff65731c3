"""Where the signature of a reply's new text starts.

Peeled from the end, one kind of block at a time, until none fits: a "-- " delimiter,
a mobile footer ("Sent from my iPhone"), a footer after a rule line (mailing lists,
logos), a sign-off ("Thanks,", "Pozdrawiam,") with the name lines after it, a
contact block (name, title, phone, address lines) or a dash-name ("-Ann"). The new
text never becomes empty: a message that is all signature-looking keeps its words."""
from __future__ import annotations

import re

from parsers.reply_patterns import INVISIBLE, MOBILE_FOOTER, SIGN_OFF, SIGN_OFF_ONLY

_DELIMITER = re.compile(r"^\s*(?:--|—|–)\s*$")
_RULE = re.compile(r"^\s*(?:[-_=*~#]\s*){5,}$")
_EMAIL = re.compile(r"(?<![\w.+'-])[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")  # linear on long runs
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_PHONE = re.compile(r"(?:\+|\(\d|\b\d)[\d ().\-/]{6,}\d")
_CONTACT_LABEL = re.compile(
    r"^\s*(?:t|tel|phone|mobile|mob|cell|fax|f|m|p|e|w|skype|email|e-mail|web|tél|telefon|tlf|"
    r"тел|טל|נייד|hp|ponsel)\b\.?\s*[:.]?", re.IGNORECASE)
_DASH_NAME = re.compile(r"^\s*[-–—~]\s*\w[\w.'’ -]{0,40}$")
_VIA = re.compile(r"^\s*(?:via|from|sent from) (?:my )?(?:mobile|phone|iphone|ipad|android)\s*$", re.IGNORECASE)

MAX_SIGNATURE_LINES = 20
# Lower-case words that belong inside names ("Ana de la Cruz", "Jan van Dijk").
_NAME_PARTICLES = {"de", "da", "del", "della", "la", "le", "van", "von", "der", "den", "ter", "al", "bin", "y",
                   "e", "dos", "das", "du", "di", "|", "&"}


def _clean(line: str) -> str:
    return INVISIBLE.sub("", line).replace("\u00a0", " ").strip()


def _capitalized(token: str) -> bool:
    letters = token.lstrip("(\"'*-–—")
    return bool(letters) and (letters[0].isupper() or (letters[0].isalpha() and not letters[0].islower()
                                                         and not letters[0].isupper()))


def looks_like_name(line: str) -> bool:
    """"Ann Lee", "John E. Doe, Ph.D.", "Me John Doe", "אנה לוי": short, capitalized, no sentence."""
    text = _clean(line).strip("*_ ")
    if not text or len(text) > 40 or text.endswith(("?", "!", ":")) or any(c.isdigit() for c in text):
        return False
    tokens = re.split(r"[\s,|]+", text)
    tokens = [t for t in tokens if t]
    if not 1 <= len(tokens) <= 5:
        return False
    return all(_capitalized(t) or t.lower() in _NAME_PARTICLES for t in tokens) and _capitalized(tokens[-1])


def _contact_like(line: str) -> bool:
    text = _clean(line)
    return bool(_EMAIL.search(text) or _URL.search(text) or _PHONE.search(text) or _CONTACT_LABEL.match(text)
                or _VIA.match(text))


def _short(line: str, limit: int = 60) -> bool:
    return len(_clean(line)) <= limit


def _nonblank(lines: list[str], start: int = 0) -> list[int]:
    return [k for k in range(start, len(lines)) if _clean(lines[k])]


def _signature_block_start(lines: list[str], end: int) -> int | None:
    """The start of one signature-looking block that ends at `end` (exclusive), or None."""
    body = lines[:end]
    filled = _nonblank(body)
    if len(filled) < 2:
        return None
    last = filled[-1]
    # "-- " delimiter: everything after it (a bounded tail).
    for k in filled:
        if _DELIMITER.match(body[k]) and k > filled[0] and len(_nonblank(body, k)) <= MAX_SIGNATURE_LINES:
            return k
    if MOBILE_FOOTER.match(_clean(body[last])):
        return last
    # A footer under a rule line: short lines only.
    for k in reversed(filled[1:]):
        if _RULE.match(body[k]):
            tail = _nonblank(body, k + 1)
            if len(tail) <= 15 and all(_short(body[m], 80) for m in tail):
                return k
            break
    tail_start = _paragraph_start(body, last)
    paragraph = [k for k in filled if k >= tail_start]
    # A sign-off and up to four name/contact lines after it.
    for pos, k in enumerate(paragraph):
        if len(paragraph) - pos > 5:
            continue
        if _is_sign_off(body[k]) and all(_short(body[m], 50) and (looks_like_name(body[m]) or _contact_like(body[m])
                                                                  or _short(body[m], 35))
                                         for m in paragraph[pos + 1:]):
            return k
    # A sign-off alone on the line before a name paragraph ("Thanks,\n\nAnn").
    if paragraph and paragraph[0] > filled[0]:
        previous = [k for k in filled if k < paragraph[0]]
        if previous and SIGN_OFF_ONLY.match(_clean(body[previous[-1]])) and len(paragraph) <= 4 \
                and looks_like_name(body[paragraph[0]]):
            return previous[-1]
    # A contact block: a name line, then title/company/phone/address lines.
    if paragraph and paragraph[0] > filled[0] and len(paragraph) <= 8:
        first = body[paragraph[0]]
        rest = paragraph[1:]
        if looks_like_name(first) and all(_short(body[m], 60) and not _clean(body[m]).endswith("?") for m in rest) \
                and (len(paragraph) == 1 and _lone_name(first) or any(_contact_like(body[m]) for m in rest)
                     or rest and all(looks_like_name(body[m]) for m in rest)):
            return paragraph[0]
    if _DASH_NAME.match(body[last]) and last > filled[0] and looks_like_name(_clean(body[last]).lstrip("-–—~ ")):
        return last
    return None


# One-word lines that end replies without being names.
_NOT_NAMES = {"yes", "no", "ok", "okay", "sure", "done", "agreed", "perfect", "great", "fine", "ja", "nein", "oui",
              "non", "sí", "si", "tak", "nie", "taip", "ne", "ya", "tidak", "да", "нет", "כן", "לא"}


def _lone_name(line: str) -> bool:
    """A last paragraph of one line is a name: "Ann Lee", or one capitalized word ("Ann")."""
    words = _clean(line).split()
    if len(words) >= 2:
        return True
    word = words[0] if words else ""
    return word.isalpha() and not word.isupper() and len(word) <= 20 and word.lower() not in _NOT_NAMES


def _is_sign_off(line: str) -> bool:
    match = SIGN_OFF.match(_clean(line))
    if not match:
        return False
    name = (match.group("name") or "").strip(" -–—")
    return not name or all(_capitalized(token) for token in name.split())


def _paragraph_start(lines: list[str], last: int) -> int:
    k = last
    while k > 0 and _clean(lines[k - 1]):
        k -= 1
    return k


def signature_start(lines: list[str]) -> int | None:
    """The index where the signature starts, or None when there is none."""
    end = len(lines)
    start = None
    while True:
        block = _signature_block_start(lines, end)
        if block is None or not _nonblank(lines[:block]):
            return start
        start = end = block
