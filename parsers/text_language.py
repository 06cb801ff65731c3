"""The language of a short business email, as an ISO 639-1 code ("und" when unsure).

lingua (compiled models shipped in its wheel: offline, deterministic) over the languages closeloop's customers write, built once and reused. A
scripts-only shortcut answers Hebrew, Greek, CJK… without a model, and a text with
too few letters, or one lingua is unsure about, is "und" rather than a guess."""
from __future__ import annotations

import re
from functools import lru_cache

from lingua import Language, LanguageDetectorBuilder

_LANGUAGES = [
    Language.ENGLISH, Language.GERMAN, Language.FRENCH, Language.SPANISH, Language.ITALIAN, Language.DUTCH,
    Language.PORTUGUESE, Language.POLISH, Language.LITHUANIAN, Language.LATVIAN, Language.ESTONIAN,
    Language.INDONESIAN, Language.RUSSIAN, Language.UKRAINIAN, Language.HEBREW, Language.SWEDISH,
    Language.DANISH, Language.BOKMAL, Language.FINNISH, Language.TURKISH, Language.CZECH, Language.SLOVAK,
    Language.ROMANIAN, Language.HUNGARIAN, Language.VIETNAMESE, Language.ARABIC, Language.GREEK,
    Language.JAPANESE, Language.CHINESE, Language.KOREAN,
]
# Scripts used by one language of the set: no model needed.
_SCRIPT_ONLY = [
    (re.compile(r"[\u0590-\u05ff]"), "he"),
    (re.compile(r"[\u0370-\u03ff]"), "el"),
    (re.compile(r"[\u3040-\u30ff]"), "ja"),
    (re.compile(r"[\uac00-\ud7af]"), "ko"),
]
_LETTERS = re.compile(r"[^\W\d_]")
_NOISE = re.compile(r"(?:https?://|www\.)\S+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@lru_cache(maxsize=1)
def _detector():
    # Low-accuracy mode reads trigrams only: models load in a quarter second instead of
    # several (a CLI call pays that once), and business sentences are long enough for it.
    return LanguageDetectorBuilder.from_languages(*_LANGUAGES).with_minimum_relative_distance(0.1) \
        .with_low_accuracy_mode().build()


def detect_language(text: str) -> str:
    # A bounded prefix: the address pattern backtracks quadratically over long runs of
    # word characters (a 60 kB line took a minute), and the start tells the language.
    text = _NOISE.sub(" ", text[:4000])
    letters = _LETTERS.findall(text)
    if len(letters) < 10:  # "Fine." or "OK": any answer would be a guess
        return "und"
    for pattern, code in _SCRIPT_ONLY:
        if len(pattern.findall(text)) * 2 >= len(letters):
            return code
    language = _detector().detect_language_of(text[:2000])
    if language is None:
        return "und"
    return "no" if language is Language.BOKMAL else language.iso_code_639_1.name.lower()
