"""HTML mail to plain text that keeps what reply extraction needs: line breaks where
the client put blocks, '>' before the lines of a <blockquote>, and marker lines where
a client's quote container starts (Gmail's gmail_quote attribution, Outlook's
divRplyFwdMsg and border-top header box, Thunderbird's moz-cite-prefix, Yahoo's
yahoo_quoted, Hotmail's stopSpelling rule). Stdlib html.parser: tolerant of the broken
markup mail clients send, and no dependency to keep."""
from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

from parsers.reply_quotes import CUT, HEADER, SEP

_BLOCK = {"address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "fieldset", "figure",
          "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "li", "main", "nav", "ol", "p", "pre",
          "section", "table", "tbody", "thead", "tfoot", "tr", "ul"}
_SKIP = {"head", "style", "script", "title", "template", "noscript", "xml"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "base", "col", "wbr", "area", "source"}
# id / class values that open a quoted-history container.
_CUT_IDS = {"divrplyfwdmsg", "x_divrplyfwdmsg", "appendonsend", "olk_src_body_section", "stopspelling",
            "ecxstopspelling", "mail-editor-reference-message-container"}
_CUT_CLASSES = {"yahoo_quoted", "outlookmessageheader", "gmail_quote_container", "protonmail_quote",
                "zmail_extra", "ms-outlook-mobile-reference-message"}
_HEADER_CLASSES = {"moz-cite-prefix", "gmail_attr", "yahoo_attribution"}
# Containers clients put the signature in: written out as a "-- " delimiter line.
_SIGNATURE_CLASSES = {"gmail_signature", "moz-signature", "signature"}
_SIGNATURE_IDS = {"signature", "appendonsend_signature", "ms-outlook-mobile-signature", "divtagdefaultwrapper_signature"}
_QUOTE_DEPTH_UP = "\x01"
_QUOTE_DEPTH_DOWN = "\x02"
_BREAK = "\x03"          # a block boundary: a line break unless the line is empty already
_SIGNATURE = "\x00SIG"


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.open_tags: list[tuple[str, str | None]] = []   # (tag, marker to close with)

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        # Python's parser asserts on unknown "<![keyword" sections; mail is not that tidy.
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return len(self.rawdata) if end < 0 else end + 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if ":" in tag:  # <o:p> and other Office namespaces carry no text structure
            return
        if tag in _SKIP:
            if tag not in _VOID:
                self.skip_depth += 1
            return
        attributes = {name.lower(): (value or "") for name, value in attrs}
        ident = attributes.get("id", "").lower()
        classes = set(attributes.get("class", "").lower().split())
        style = attributes.get("style", "").lower().replace(" ", "")
        if tag == "br":
            self.parts.append("\n")
            return
        if tag == "hr":
            self.parts += [_BREAK, CUT if ident in _CUT_IDS else SEP, _BREAK]
            return
        if tag in _VOID:
            return
        closing = None
        if ident in _CUT_IDS or classes & _CUT_CLASSES:
            self.parts += [_BREAK, CUT, _BREAK]
        elif classes & _HEADER_CLASSES:
            self.parts += [_BREAK, HEADER]
            closing = _BREAK
        elif (classes & _SIGNATURE_CLASSES or ident in _SIGNATURE_IDS
              or attributes.get("data-signatureblock") == "true") and tag in _BLOCK:
            self.parts += [_BREAK, _SIGNATURE, _BREAK]
        elif tag == "div" and "border-top:solid" in style and "border:none" in style:
            self.parts += [_BREAK, SEP, _BREAK]   # Outlook's box around the "From: … Sent: …" header
        if tag == "blockquote":
            self.parts += [_BREAK, _QUOTE_DEPTH_UP, _BREAK]
            closing = _QUOTE_DEPTH_DOWN
        elif tag in _BLOCK:
            self.parts.append(_BREAK)
            closing = closing or _BREAK
        elif tag == "td":
            self.parts.append(" ")
        self.open_tags.append((tag, closing))

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if ":" in tag:
            return
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        # Close up to the matching open tag (mail HTML often leaves tags open).
        for position in range(len(self.open_tags) - 1, -1, -1):
            if self.open_tags[position][0] == tag:
                for _, closing in reversed(self.open_tags[position:]):
                    if closing == _QUOTE_DEPTH_DOWN:
                        self.parts += [_BREAK, _QUOTE_DEPTH_DOWN, _BREAK]
                    elif closing:
                        self.parts.append(closing)
                del self.open_tags[position:]
                return

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        self.parts.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def _lines(parts: list[str]) -> list[str]:
    lines: list[str] = []
    line = ""
    for part in parts:
        if part == _BREAK:
            if line.strip():
                lines.append(line)
            line = ""      # a whitespace-only line between blocks is no line
        elif part == "\n":
            lines.append(line)
            line = ""
        else:
            line += part
    if line.strip():
        lines.append(line)
    return lines


def html_to_text(html: str) -> str:
    """Plain text with '>' quote prefixes and marker lines (see module doc)."""
    builder = _TextBuilder()
    html = html.replace("\x00", "")
    try:
        builder.feed(html)
        builder.close()
        lines = _lines(builder.parts)
    except Exception:  # html.parser gave up on this markup: keep the words, drop the tags
        lines = unescape(re.sub(r"<[^>]*>", " ", html)).split("\n")
    depth = 0
    out: list[str] = []
    for line in lines:
        if line == _QUOTE_DEPTH_UP:
            depth += 1
            continue
        if line == _QUOTE_DEPTH_DOWN:
            depth = max(0, depth - 1)
            continue
        text = line.replace("\u00a0", " ").strip()
        if text == "--":
            text = "-- "   # the standard signature delimiter keeps its space
        if text == _SIGNATURE:
            previous = next((o for o in reversed(out) if o.strip()), "")
            if previous.strip("> ") in ("--", "—"):
                continue   # the client wrote its own "-- " before the signature box
            text = "-- "
        if depth and not text.startswith("\x00"):
            out.append(">" * depth + (" " + text if text else ""))
        else:
            out.append(text)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")
