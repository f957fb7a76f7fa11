"""Normalising DICOM value strings for the index, so stored values and query values compare as text."""
from __future__ import annotations

import re
import unicodedata

_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_LEGACY_DATE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")
_TIME = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")
_LEGACY_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?(?:\.(\d{1,6}))?$")


def normalize_date(value) -> str:
    """``YYYYMMDD`` for a DA value (accepting the ACR-NEMA ``YYYY.MM.DD``); '' when empty or invalid."""
    text = str(value or "").strip()
    match = _DATE.match(text) or _LEGACY_DATE.match(text)
    if not match:
        return ""
    year, month, day = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return ""
    return f"{year:04d}{month:02d}{day:02d}"


def normalize_time(value, *, upper: bool = False) -> str:
    """``HHMMSS.ffffff`` for a TM value; missing parts become 0 (or their maximum when ``upper``).

    ``upper`` serves the end of a range: ``-1015`` means up to 10:15:59.999999 (PS3.4 C.2.2.2.5).
    """
    text = str(value or "").strip()
    match = _TIME.match(text) or _LEGACY_TIME.match(text)
    if not match:
        return ""
    hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or (minutes and int(minutes) > 59) or (seconds and int(seconds) > 60):
        return ""
    fill_two, fill_fraction = ("59", "9") if upper else ("00", "0")
    fraction = (fraction or "").ljust(6, fill_fraction)
    return f"{hours}{minutes or fill_two}{seconds or fill_two}.{fraction}"


def combine_datetime(date: str, time: str) -> str:
    """StudyDate + StudyTime as one sortable ``YYYYMMDDHHMMSS.ffffff`` (date alone when no time)."""
    if not date:
        return ""
    if not time:
        return date + "000000.000000"
    return date + time


def fold_name(value) -> str:
    """A person name folded for matching: accents removed, upper case (component separators kept as
    written)."""
    text = unicodedata.normalize("NFKD", str(value or ""))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.upper().strip()


def to_int(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            return int(float(str(value).strip()))
        except ValueError:
            return None


def text(value, limit: int) -> str:
    """A string value for a text column: multi-values joined with backslash, cut to the column width."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]
