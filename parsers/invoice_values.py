"""Values as invoices print them, in many languages: amounts (1.234,56 / 1 234,56 /
1,234.56 / 1'234.56), dates (31.01.2026, 01/31/2026, 2026-01-31, 31 janvier 2026,
31 stycznia 2026, 2026 m. sausio 31 d.), currencies, IBANs and VAT ids (checksummed
with python-stdnum)."""
from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation

from stdnum import iban as stdnum_iban
from stdnum.eu import vat as stdnum_vat


_UNDECOMPOSED = str.maketrans({"ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "ı": "i"})


def fold(text: str) -> str:
    """Lower case without accents, SAME LENGTH as the input (offsets stay valid)."""
    out = []
    for char in text.translate(_UNDECOMPOSED):
        plain = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)).lower()
        out.append(plain if len(plain) == 1 else char.lower()[:1] or char)
    return "".join(out)


# An amount: optional sign, digits with thousands groups (. , space ' or none), and
# optionally 1-2 decimals. Space-grouped numbers must carry decimals (else "3 300"
# could be a quantity and a price side by side).
AMOUNT = re.compile(
    r"(?<![\w.,/-])(?P<sign>[-−–]\s?)?(?P<num>"
    r"\d{1,3}(?:[.,'’]\d{3})+(?:[.,]\d{1,2})?"
    r"|\d{1,3}(?:[ \u00a0\u202f]\d{3})+[.,]\d{1,2}"
    r"|\d+(?:[.,]\d{1,2})?"
    r")(?![\d%]|[.,]\d|\s?%)")


def parse_amount(raw: str) -> Decimal | None:
    """'1.234,56' -> Decimal('1234.56'), '1,234.56' -> 1234.56, '1 234,56' -> 1234.56."""
    text = re.sub(r"[\s\u00a0\u202f'’]", "", raw).replace("−", "-").replace("–", "-")
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    last = max(text.rfind(","), text.rfind("."))
    if last >= 0:
        decimals = len(text) - last - 1
        if decimals == 3 and text.count(text[last]) >= 1 and ("," in text) != ("." in text):
            text = text.replace(text[last], "")          # 1,234 or 1.234: a thousands group
        else:
            whole, frac = text[:last], text[last + 1:]
            text = re.sub(r"[.,]", "", whole) + "." + frac
    try:
        return Decimal(sign + text)
    except InvalidOperation:
        return None


def amounts_in(text: str) -> list[tuple[Decimal, int, int, bool]]:
    """(value, start, end, has_decimals) for every amount in the text, left to right."""
    found = []
    for match in AMOUNT.finditer(text):
        value = parse_amount((match.group("sign") or "") + match.group("num"))
        if value is not None:
            found.append((value, match.start(), match.end(), bool(re.search(r"[.,]\d{1,2}$", match.group("num")))))
    return found


MONTHS = {  # folded month names (and common abbreviations / inflections) -> month number
    # English, German, French, Spanish, Italian, Indonesian
    **{m: i for i, names in enumerate([
        "january jan januar janvier enero gennaio januari janv",
        "february feb februar fevrier febrero febbraio februari fevr",
        "march mar marz mars marzo maret maart mrt",
        "april apr avril abril aprile",
        "may mai mayo maggio mei",
        "june jun juni juin junio giugno",
        "july jul juli juillet julio luglio juil",
        "august aug aout agosto agustus agu augustus",
        "september sep sept septembre septiembre settembre sep",
        "october oct oktober octobre octubre ottobre okt",
        "november nov novembre noviembre nop",
        "december dec dezember decembre diciembre dicembre desember des dez",
    ], start=1) for m in names.split()},
    # Polish (nominative and genitive)
    **{m: i for i, names in enumerate([
        "styczen stycznia", "luty lutego", "marzec marca", "kwiecien kwietnia", "maj maja",
        "czerwiec czerwca", "lipiec lipca", "sierpien sierpnia", "wrzesien wrzesnia",
        "pazdziernik pazdziernika", "listopad listopada", "grudzien grudnia"], start=1) for m in names.split()},
    # Lithuanian (nominative and genitive)
    **{m: i for i, names in enumerate([
        "sausis sausio", "vasaris vasario", "kovas kovo", "balandis balandzio", "geguze geguzes",
        "birzelis birzelio", "liepa liepos", "rugpjutis rugpjucio", "rugsejis rugsejo",
        "spalis spalio", "lapkritis lapkricio", "gruodis gruodzio"], start=1) for m in names.split()},
    # Hebrew
    **{m: i for i, m in enumerate(["ינואר", "פברואר", "מרץ", "אפריל", "מאי", "יוני", "יולי", "אוגוסט",
                                   "ספטמבר", "אוקטובר", "נובמבר", "דצמבר"], start=1)},
}
# Polish/Lithuanian folded letters that NFKD leaves alone
_EXTRA_FOLD = str.maketrans({"ł": "l", "ż": "z", "ź": "z", "ś": "s", "ą": "a", "ę": "e", "ų": "u", "ū": "u",
                             "ė": "e", "į": "i", "č": "c", "š": "s", "ž": "z"})
_MONTH_WORD = r"([^\W\d_]{3,12})\.?"
DATE_PATTERNS = [
    ("ymd", re.compile(r"(?<!\d)(\d{4})[-./](\d{1,2})[-./](\d{1,2})(?!\d)")),
    ("dmy", re.compile(r"(?<!\d)(\d{1,2})[./-](\d{1,2})[./-](\d{4}|\d{2})(?![\d.]\d)")),
    ("d_month_y", re.compile(r"(?<!\d)(\d{1,2})\.?\s+" + _MONTH_WORD + r",?\s+(\d{4})(?!\d)")),
    ("month_d_y", re.compile(_MONTH_WORD + r"\s+(\d{1,2})(?:st|nd|rd|th)?\s*,?\s+(\d{4})(?!\d)")),
    ("y_month_d", re.compile(r"(?<!\d)(\d{4})\s*(?:m\.)?\s+" + _MONTH_WORD + r"\s+(\d{1,2})(?:\s*d\.)?(?!\d)")),
]


def _month(word: str) -> int | None:
    key = fold(word).translate(_EXTRA_FOLD).rstrip(".")
    if key not in MONTHS and key[:1] in "בל" and key[1:] in MONTHS:
        key = key[1:]   # Hebrew: "במרץ" is "in March"
    return MONTHS.get(key)


def dates_in(text: str, month_first: bool = False) -> list[tuple[date, int, int]]:
    """(date, start, end) for every date in the text. Numeric dd/mm vs mm/dd: a part
    over 12 decides; otherwise day first unless month_first (US-style documents)."""
    found: list[tuple[date, int, int]] = []
    for kind, pattern in DATE_PATTERNS:
        for m in pattern.finditer(text):
            try:
                if kind == "ymd":
                    value = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                elif kind == "dmy":
                    a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
                    y += 2000 if y < 100 else 0
                    if (month_first and b <= 31 and a <= 12) or b > 12:
                        a, b = b, a
                    value = date(y, b, a)
                elif kind == "d_month_y":
                    month = _month(m.group(2))
                    if not month:
                        continue
                    value = date(int(m.group(3)), month, int(m.group(1)))
                elif kind == "month_d_y":
                    month = _month(m.group(1))
                    if not month:
                        continue
                    value = date(int(m.group(3)), month, int(m.group(2)))
                else:
                    month = _month(m.group(2))
                    if not month:
                        continue
                    value = date(int(m.group(1)), month, int(m.group(3)))
            except ValueError:
                continue
            if 1990 <= value.year <= 2100 and not any(s <= m.start() < e for _, s, e in found):
                found.append((value, m.start(), m.end()))
    return sorted(found, key=lambda item: item[1])


CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "₪": "ILS", "zł": "PLN", "zl": "PLN", "rp": "IDR", "rs": "INR", "rs.": "INR",
                    "¥": "JPY", "₹": "INR", "chf": "CHF", "kč": "CZK", "fr.": "CHF"}
ISO_CURRENCIES = set("EUR USD GBP PLN ILS IDR CHF JPY CNY INR CAD AUD NZD SEK NOK DKK CZK HUF RON BGN HRK "
                     "TRY RUB UAH BRL MXN ZAR SGD HKD KRW THB MYR PHP VND AED SAR EGP NGN KES ARS CLP COP PEN "
                     "ISK LTL LVL".split())
_ISO = re.compile(r"(?<![A-Za-z])(" + "|".join(sorted(ISO_CURRENCIES)) + r")(?![A-Za-z])")


def currencies_in(text: str) -> list[str]:
    found = [m.group(1) for m in _ISO.finditer(text)]
    lowered = text.lower()
    for symbol, code in CURRENCY_SYMBOLS.items():
        if symbol in ("$", "€", "£", "₪", "¥", "₹"):
            found += [code] * lowered.count(symbol)
        elif re.search(r"(?<![a-z])" + re.escape(symbol) + r"(?![a-z])", lowered):
            found.append(code)
    return found


_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{2,4}){3,8})\b")


def ibans_in(text: str) -> list[str]:
    """IBANs that pass the ISO 7064 check, in compact form."""
    out = []
    for match in _IBAN.finditer(text.upper()):
        candidate = match.group(1)
        # a trailing group may belong to the next field: try shorter prefixes too
        parts = candidate.split(" ")
        for cut in range(len(parts), 0, -1):
            compact = "".join(parts[:cut])
            if len(compact) >= 15 and stdnum_iban.is_valid(compact):
                out.append(compact)
                break
    return out


_VAT = re.compile(r"\b((?:AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI)"
                  r"\s?[0-9A-Z](?:[ .]?[0-9A-Z]){1,13})\b")


def vat_ids_in(text: str) -> list[tuple[str, bool]]:
    """(compact VAT id, checksum valid) for EU VAT-id-shaped tokens."""
    out = []
    for match in _VAT.finditer(text.upper()):
        parts = re.split(r"[ .]", match.group(1))
        best = None
        for cut in range(len(parts), 0, -1):   # "FR 11 123 456 782 UST": the id ends before a word
            compact = "".join(parts[:cut])
            if re.search(r"\d{5}", compact) and stdnum_vat.is_valid(compact):
                best = (stdnum_vat.compact(compact), True)
                break
        if best is None:
            digits = [p for p in parts[1:] if p.isdigit()]
            compact = parts[0] + "".join(digits) if not parts[0][2:].isalpha() else "".join(parts[:1] + digits)
            best = (compact, False) if re.search(r"\d{5}", compact) else None
        if best:
            out.append(best)
    return out
