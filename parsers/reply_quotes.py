"""Where the quoted history of a plain-text reply starts, and which lines are quoted.

The text is read line by line. Four things end or interrupt the new text:
- an "-----Original Message-----" separator (any language): history to the end;
- an Outlook-style header block ("From: … Sent: … To: … Subject: …"): history to the end;
- an attribution line ("On <date>, <name> wrote:"): when '>'-quoted lines follow it, the
  quote may be answered inline (text between quoted blocks is kept); otherwise the
  history runs to the end;
- '>'-quoted lines themselves.
A forward ("---------- Forwarded message ----------") that comes before any of these
is the message itself (the sender is sending us that text), so it is kept whole.

Lines handed in from HTML may carry markers (see `mail_html`): CUT (a client's quote
container begins: history to the end), HEADER (a client's attribution line) and SEP
(a horizontal rule)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from parsers.reply_patterns import (
    FORWARD_INTRO, FORWARDED, HEADER_FIELDS, INTRO, INVISIBLE, ORIGINAL_MESSAGE, WROTE,
)

CUT = "\x00CUT"
HEADER = "\x00HDR"
SEP = "\x00SEP"

_EMAIL = r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+"
_DASHES = r"[-_=*~]"
_ORIGINAL = re.compile(
    r"^\s*" + _DASHES + r"{2,}\s*(?:" + "|".join(ORIGINAL_MESSAGE) + r")\s*" + _DASHES + r"{2,}\s*$",
    re.IGNORECASE)
_FORWARD = re.compile(
    r"^\s*(?:" + _DASHES + r"{2,}\s*(?:" + "|".join(FORWARDED) + r")\s*" + _DASHES + r"{2,}"
    r"|(?:" + "|".join(FORWARD_INTRO) + r")\s*:)\s*$", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\s*(?:" + _DASHES + r"\s*){5,}$")

# Attribution lines, tried on a line joined with up to three following lines.
_WROTE_TAIL = r"\s*[:：]?\s*" + _DASHES + r"*\s*$"
_ATTRIBUTIONS = [
    # "On Tue, 5 Dec 2023 at 10:00, Ann <ann@x.com> wrote:", "Le … a écrit :", "------On … wrote-----"
    re.compile(r"^" + _DASHES + r"*\s*" + INTRO + r"\b.*\d.*\b" + WROTE + _WROTE_TAIL, re.IGNORECASE),
    # "Am 5. Dez. 2023 um 10:00 schrieb Hans <h@x.de>:", "Op … schreef Julius <j@x.nl>:"
    re.compile(r"^" + _DASHES + r"*\s*" + INTRO + r"\b.*\d.*\b" + WROTE + r"\b.*[:：]\s*$", re.IGNORECASE),
    # "---- John Smith wrote ----" (Android)
    re.compile(r"^" + _DASHES + r"{2,}\s*.{1,80}\s" + WROTE + r"\s*" + _DASHES + r"{2,}\s*$", re.IGNORECASE),
    # "<name> <ann@x.com> wrote:", "wt., 5 gru 2023 o 10:00 Jan <jan@x.pl> napisał(a):"
    re.compile(r"^.{0,200}" + _EMAIL + r"\W{0,4}\s*\)?\s*" + WROTE + _WROTE_TAIL, re.IGNORECASE),
    # "Hans <hans@x.de> schrieb am Di., 5. Dez. 2023, 10:00:" (Gmail for Android)
    re.compile(r"^.{0,120}" + _EMAIL + r"\W{0,4}\s*\)?\s*" + WROTE + r"\s+\S{1,6}\s.{0,60}\d.{0,60}[:：]\s*$",
               re.IGNORECASE),
    # "Quoting Ann <a@x.com>:" (Horde, Roundcube)
    re.compile(r"^\s*(?:quoting|zitat von|citando|cytuję|citation de|цитирую)\s.{1,150}[:：]\s*$", re.IGNORECASE),
    # "On 04/19/2011 07:10 AM, Roman Tkachenko wrote:" without an address, date-led lines
    re.compile(r"^\s*\d[\d./-]+\d.{0,150}\b" + WROTE + _WROTE_TAIL, re.IGNORECASE),
    # "вт, 5 дек. 2023 г. в 10:00, Иван <ivan@x.ru>:", "26.06.2014, 14:41, "Alex" <a@x.com>:"
    re.compile(r"^.{0,150}\d{1,2}[:.]\d\d.{0,150}<\s*" + _EMAIL + r"\s*>\s*\)?\s*[:：]\s*$"),
    # "2011/4/7 Nathan <support@example.com>" (Gmail's old date-first line)
    re.compile(r"^\s*\d{4}[/.-]\d{1,2}[/.-]\d{1,2}\b.{0,100}<\s*" + _EMAIL + r"\s*>\s*[:：]?\s*$"),
]
# How the first line of a wrapped attribution begins: dashes, "On"/"Le"/…, a date, a weekday.
_ATTRIBUTION_START = re.compile(
    r"^(?:" + _DASHES + r"{2,}|" + INTRO + r"\b|\d|[^\W\d_]{2,4}\.?,?\s+\d)", re.IGNORECASE)
_STRONG_START = re.compile(r"^(?:" + _DASHES + r"{2,}|" + INTRO + r"\b)", re.IGNORECASE)
# An attribution line that shares its line with the reply: "Thanks! On Mon, … wrote:".
_INLINE_ATTRIBUTION = re.compile(
    r"(?:^|\s|" + _DASHES + r")(?P<head>" + _DASHES + r"*\s*" + INTRO + r"\s.*\d.*\b" + WROTE + _WROTE_TAIL + r")",
    re.IGNORECASE)

_FIELD_ROLE = {name: role for role, names in HEADER_FIELDS.items() for name in names}
_FIELD = re.compile(
    r"^\s*[>\s]*[*_]{0,2}(?P<name>" + "|".join(sorted((re.escape(n) for n in _FIELD_ROLE), key=len, reverse=True))
    + r")[*_]{0,2}\s?[:：][*_]{0,2}(?:\s|$)", re.IGNORECASE)
_QUOTED = re.compile(r"^\s*>")


def clean(line: str) -> str:
    """The line as matched: bidi marks removed, non-breaking spaces made plain."""
    return INVISIBLE.sub("", line).replace("\u00a0", " ")


def field_role(line: str) -> str | None:
    match = _FIELD.match(clean(line))
    return _FIELD_ROLE[match.group("name").lower()] if match else None


def _header_block_at(lines: list[str], i: int) -> bool:
    """Does an Outlook/webmail header block ("From: … Sent: …") start at line i?"""
    first = field_role(lines[i])
    if first is None:
        return False
    roles = {first}
    continuation = 0
    for line in lines[i + 1:i + 9]:
        if not clean(line).strip():
            break
        role = field_role(line)
        if role is None:
            continuation += 1  # a wrapped value ("bob@example.com]")
            if continuation > 2:
                break
            continue
        continuation = 0
        roles.add(role)
    if "from" in roles and len(roles) >= 2:
        return True
    return bool(roles & {"sent", "date"}) and bool(roles & {"to", "subject", "from", "cc"})


def _attribution_at(lines: list[str], i: int) -> tuple[int, str] | None:
    """If an attribution line starts at line i: (index of its last line, text before it
    on the first line). It may wrap over up to five lines (blank ones included)."""
    first = clean(lines[i]).strip()
    if not first or len(first) > 300 or _QUOTED.match(first) and not first.lstrip("> ").strip():
        return None
    if first.startswith(HEADER):
        return i, ""
    joined = ""
    taken = 0
    # Only a line that looks like the start of one may begin a wrapped attribution.
    reach = i + 6 if _ATTRIBUTION_START.match(first) else i + 1
    for j in range(i, min(len(lines), reach)):
        part = clean(lines[j]).strip()
        if j > i and part.startswith(">") and not re.search(WROTE, part, re.IGNORECASE):
            break
        if not part:
            continue
        joined = f"{joined} {part}".strip() if joined else part
        taken += 1
        if len(joined) > 400 or taken > 4:
            return None
        if j == i:
            inline = _INLINE_ATTRIBUTION.search(joined)
            if inline and inline.start("head") > 0:
                return j, clean(lines[i])[:inline.start("head")].rstrip(" -")
        if any(pattern.match(joined) for pattern in _ATTRIBUTIONS):
            if j > i:
                # The attribution may start on a later line ("Hi 2" above "On … wrote:").
                later = next(k for k in range(i + 1, j + 1) if not _blank(lines[k]))
                if _STRONG_START.match(clean(lines[later]).strip()) and _attribution_at(lines, later):
                    return None
            return j, ""
    return None


def _is_quoted(line: str) -> bool:
    return bool(_QUOTED.match(clean(line)))


def _blank(line: str) -> bool:
    return not clean(line).strip()


@dataclass(frozen=True)
class Split:
    lines: list[str]       # the new text's lines
    forwarded: bool        # the message is a forward, kept whole


def new_text_lines(lines: list[str]) -> Split:
    """The lines of the new text: quoted history, attribution lines and headers removed."""
    drop = [False] * len(lines)
    replaced: dict[int, str] = {}
    saw_attribution = False
    end = len(lines)
    i = 0
    while i < end:
        line = lines[i]
        text = clean(line)
        if text.startswith(CUT) or _ORIGINAL.match(text):
            end = i
            break
        if _FORWARD.match(text):
            if not any(drop[:i]):
                return Split([ln for ln in lines if not ln.startswith(("\x00",))], True)
            end = i
            break
        if text.startswith(SEP):
            drop[i] = True
            i += 1
            continue
        if _is_quoted(line):
            drop[i] = True
            i += 1
            continue
        if _header_block_at(lines, i):
            end = i
            break
        attribution = _attribution_at(lines, i)
        if attribution is not None:
            last, before = attribution
            following = next((k for k in range(last + 1, end) if not _blank(lines[k])), None)
            if following is not None and not _is_quoted(lines[following]) \
                    and not clean(lines[following]).startswith(HEADER):
                end = i
                if before.strip():
                    replaced[i] = before
                    end = i + 1
                break
            saw_attribution = True
            for k in range(i, last + 1):
                drop[k] = True
            if before.strip():
                drop[i] = False
                replaced[i] = before
            i = last + 1
            continue
        i += 1
    _keep_false_quotes(lines, drop, end, saw_attribution)
    _join_broken_quotes(lines, drop, end)
    kept: list[str] = []
    skipping_blanks = False
    for k in range(end):
        if drop[k] and k not in replaced:
            skipping_blanks = True
            continue
        if skipping_blanks and _blank(lines[k]):
            continue  # the blank lines after a removed quote go with it
        skipping_blanks = False
        kept.append(replaced.get(k, lines[k]))
    return Split(_trim_separators(kept), False)


def _quoted_blocks(lines: list[str], drop: list[bool], end: int) -> list[tuple[int, int]]:
    blocks, k = [], 0
    while k < end:
        if drop[k] and _is_quoted(lines[k]):
            start = k
            while k < end and drop[k] and _is_quoted(lines[k]):
                k += 1
            blocks.append((start, k))
        else:
            k += 1
    return blocks


def _keep_false_quotes(lines: list[str], drop: list[bool], end: int, saw_attribution: bool) -> None:
    """Without an attribution line, a short '>' block in the middle of text is text
    (">>> http://example.com <<<"), not a quote."""
    if saw_attribution:
        return
    for start, stop in _quoted_blocks(lines, drop, end):
        trailing = all(_blank(lines[k]) or drop[k] for k in range(stop, end))
        if stop - start < 3 and not trailing:
            for k in range(start, stop):
                drop[k] = False


def _join_broken_quotes(lines: list[str], drop: list[bool], end: int) -> None:
    """A line squeezed between quoted lines without a blank line is a wrapped piece of
    the quote (a link the client broke), not an inline answer."""
    for k in range(1, end - 1):
        if drop[k] or _blank(lines[k]):
            continue
        before = drop[k - 1] and _is_quoted(lines[k - 1])
        after_k = k + 1
        while after_k < end and not drop[after_k] and not _blank(lines[after_k]) and after_k - k < 2:
            after_k += 1
        after = after_k < end and drop[after_k] and _is_quoted(lines[after_k])
        if before and after:
            for m in range(k, after_k):
                drop[m] = True


def _trim_separators(kept: list[str]) -> list[str]:
    """Drop blank, rule and empty-signature ("-- ") lines left at the end, where the cut
    history began."""
    while kept and (_blank(kept[-1]) or _SEPARATOR.match(clean(kept[-1])) or kept[-1].startswith("\x00")
                    or clean(kept[-1]).strip() in ("--", "—")):
        kept.pop()
    return [line for line in kept if not line.startswith("\x00")]
