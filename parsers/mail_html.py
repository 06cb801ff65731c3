"""HTML mail to plain text that keeps what reply extraction needs: line breaks where
the client put blocks, '>' before the lines of a <blockquote>, and marker lines where
a client's quote container starts (Gmail's gmail_quote attribution, Outlook's
divRplyFwdMsg and border-top header box, Thunderbird's moz-cite-prefix, Yahoo's
yahoo_quoted, Hotmail's stopSpelling rule). Stdlib html.parser: tolerant of the broken
markup mail clients send, and no dependency to keep."""
from __future__ import annotations

import re
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
_QUOTE_DEPTH_UP = "\x01"
_QUOTE_DEPTH_DOWN = "\x02"


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.open_tags: list[tuple[str, str | None]] = []   # (tag, marker to close with)

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
            self.parts.append(f"\n{CUT}\n" if ident in _CUT_IDS else f"\n{SEP}\n")
            return
        if tag in _VOID:
            return
        closing = None
        if ident in _CUT_IDS or classes & _CUT_CLASSES:
            self.parts.append(f"\n{CUT}\n")
        elif classes & _HEADER_CLASSES:
            self.parts.append(f"\n{HEADER}")
            closing = "\n"
        elif tag == "div" and "border-top:solid" in style and "border:none" in style:
            self.parts.append(f"\n{SEP}\n")   # Outlook's box around the "From: … Sent: …" header
        if tag == "blockquote":
            self.parts.append(f"\n{_QUOTE_DEPTH_UP}\n")
            closing = f"\n{_QUOTE_DEPTH_DOWN}\n"
        elif tag in _BLOCK:
            self.parts.append("\n")
            closing = closing or "\n"
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
                    if closing:
                        self.parts.append(closing)
                del self.open_tags[position:]
                return

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        self.parts.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(html: str) -> str:
    """Plain text with '>' quote prefixes and marker lines (see module doc)."""
    builder = _TextBuilder()
    builder.feed(html)
    builder.close()
    raw = "".join(builder.parts)
    depth = 0
    out: list[str] = []
    for line in raw.split("\n"):
        if line == _QUOTE_DEPTH_UP:
            depth += 1
            continue
        if line == _QUOTE_DEPTH_DOWN:
            depth = max(0, depth - 1)
            continue
        text = line.replace("\u00a0", " ").strip()
        if depth and not text.startswith("\x00"):
            out.append(">" * depth + (" " + text if text else ""))
        else:
            out.append(text)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")
