"""QIDO-RS (PS3.18 10.6, 8.3.4) without Flask: parse a query, run it, build DICOM JSON results.

``parse_query`` turns the query parameters into a plain ``QidoQuery`` (matching conditions for
app/index/query.py, the attributes to return, the page) or raises BadRequest naming the bad parameter.
Each matching type is one small function citing PS3.4 C.2.2.2. ``run_query`` executes it: one SELECT,
plus one batched SELECT of representative instance metadata when a result needs attributes the index
does not hold.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from app.codec.instance import BULK_BASE_TOKEN
from app.codec.values import fold_name, normalize_date, normalize_time
from app.dicomweb.uids import is_uid, require_uid
from app.errors import BadRequest
from app.index import query as q
from app.qido import attributes as a

_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_OFFSET = re.compile(r"^([+-])(\d{2})(\d{2})$")
_BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_PIXEL_TAGS = {"7FE00010", "7FE00008", "7FE00009"}
_COMPUTED = {"SpecificCharacterSet", "InstanceAvailability", "RetrieveURL"}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


@dataclass
class QidoQuery:
    level: str
    study_uid: str | None = None
    series_uid: str | None = None
    conditions: list = field(default_factory=list)
    return_tags: list = field(default_factory=list)        # 8-hex tags, in the order asked
    include_all: bool = False
    limit: int = 0                 # what the page holds at most
    offset: int = 0
    capped: bool = False           # the client asked for more than qido:maximumResultsLimit (or no limit)
    warnings: list = field(default_factory=list)


@dataclass
class QidoResult:
    datasets: list
    warnings: list


@dataclass(frozen=True)
class Attribute:
    """A query parameter name resolved to a DICOM attribute (or a path into sequences)."""
    tags: tuple            # 8-hex tags, outermost first
    keywords: tuple        # '' for tags the dictionary does not know

    @property
    def dotted_tag(self) -> str:
        return ".".join(self.tags)

    @property
    def name(self) -> str:
        return ".".join(k or t for k, t in zip(self.keywords, self.tags))


# --- attribute names (PS3.18 8.3.4.1: keyword, tag, or dotted path into sequences) -----------------------

def resolve_attribute(name: str) -> Attribute | None:
    """The attribute a parameter name means, or None when it is neither a keyword nor a tag path."""
    tags, keywords = [], []
    components = name.split(".")
    for position, component in enumerate(components):
        if _TAG.match(component):
            tag = component.upper()
            keyword = _keyword(tag)
        else:
            number = tag_for_keyword(component)
            if number is None:
                return None
            tag, keyword = f"{number:08X}", component
        if position < len(components) - 1 and keyword and _vr(tag) != "SQ":
            raise BadRequest(f"{name}: {keyword} is not a sequence, so nothing can follow it")
        tags.append(tag)
        keywords.append(keyword)
    return Attribute(tuple(tags), tuple(keywords))


@lru_cache(maxsize=8192)
def _keyword(tag: str) -> str:
    """The keyword of an 8-hex tag ('' when the dictionary does not know it); cached: results repeat
    the same few tags thousands of times."""
    try:
        return keyword_for_tag(int(tag, 16)) or ""
    except ValueError:
        return ""


@lru_cache(maxsize=8192)
def _vr(tag: str) -> str:
    try:
        vr = dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"
    return vr.split(" or ")[0] if " or " in vr else vr


@lru_cache(maxsize=1024)
def _tag_of(keyword: str) -> str:
    return f"{tag_for_keyword(keyword):08X}"


# --- the matching types (PS3.4 C.2.2.2) ------------------------------------------------------------------

def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def universal_match(value: str) -> bool:
    """C.2.2.2.3 Universal Matching: an empty value (or a lone ``*``) matches everything."""
    return value == "" or value == "*"


def single_value_match(value: str) -> q.Equals:
    """C.2.2.2.1 Single Value Matching: the stored value equals the query value."""
    return q.Equals((value,))


def uid_list_match(name: str, value: str) -> q.Equals:
    """C.2.2.2.2 List of UID Matching: any of the UIDs (PS3.18 8.3.4.1: comma-separated; backslash too)."""
    uids = [part.strip() for part in re.split(r"[,\\]", value)]
    bad = [uid for uid in uids if not is_uid(uid)]
    if bad:
        raise BadRequest(f"{name}: {bad[0][:80]!r} is not a valid UID (UID matching takes a UID or a "
                         "comma-separated list of UIDs, no wildcards)")
    return q.Equals(tuple(dict.fromkeys(uids)))


def value_list_match(name: str, value: str) -> q.Equals:
    """C.2.2.2.2 applied to code strings: any of the comma- or backslash-separated values."""
    values = [part.strip() for part in re.split(r"[,\\]", value)]
    if any(not v or has_wildcard(v) for v in values):
        raise BadRequest(f"{name}: a list of values may contain neither empty values nor wildcards")
    return q.Equals(tuple(dict.fromkeys(values)))


def wildcard_match(value: str) -> q.Wildcard:
    """C.2.2.2.4 Wild Card Matching: ``*`` any run of characters, ``?`` exactly one (case-sensitive)."""
    return q.Wildcard(value)


def integer_match(name: str, value: str) -> q.Equals:
    """C.2.2.2.1/C.2.2.2.2 for IS values: one integer or a comma-separated list."""
    try:
        numbers = tuple(int(part) for part in re.split(r"[,\\]", value))
    except ValueError:
        raise BadRequest(f"{name}: {value[:80]!r} is not an integer (or comma-separated integers)") from None
    if any(not -2**31 <= n < 2**31 for n in numbers):
        raise BadRequest(f"{name}: {value[:80]!r} is out of the range of an IS value")
    return q.Equals(numbers)


def _split_range(name: str, value: str) -> tuple[str, str, bool]:
    if value.count("-") > 1:
        raise BadRequest(f"{name}: {value[:80]!r} is not a value or a range of values")
    low, dash, high = value.partition("-")
    if dash and not low and not high:
        raise BadRequest(f"{name}: a range needs at least one end")
    return low.strip(), high.strip(), bool(dash)


def date_range_match(name: str, value: str) -> q.Range:
    """C.2.2.2.5 Range Matching of DA: ``D``, ``D1-D2``, ``-D`` and ``D-`` (inclusive)."""
    low, high, is_range = _split_range(name, value)
    bounds = []
    for part in (low, high) if is_range else (low,):
        if not part:
            bounds.append(None)
            continue
        date = normalize_date(part) if re.fullmatch(r"\d{8}", part) else ""
        if date:
            try:
                datetime.strptime(date, "%Y%m%d")       # a real calendar day (no 30 February)
            except ValueError:
                date = ""
        if not date:
            raise BadRequest(f"{name}: {part[:80]!r} is not a valid date (YYYYMMDD)")
        bounds.append(date)
    if not is_range:
        return q.Range(bounds[0], bounds[0])
    if bounds[0] and bounds[1] and bounds[0] > bounds[1]:
        raise BadRequest(f"{name}: the range {value!r} ends before it starts")
    return q.Range(bounds[0], bounds[1])


def time_range_match(name: str, value: str) -> q.Range:
    """C.2.2.2.5 Range Matching of TM. A single value matches its whole precision (``1015`` is
    10:15:00 to 10:15:59.999999); the upper end of a range likewise."""
    low, high, is_range = _split_range(name, value)
    lower = _time(name, low, upper=False) if low else None
    upper = _time(name, high if is_range else low, upper=True) if (high or not is_range) else None
    if lower and upper and lower > upper:
        raise BadRequest(f"{name}: the range {value!r} ends before it starts")
    return q.Range(lower, upper)


def _time(name: str, text: str, *, upper: bool) -> str:
    result = normalize_time(text, upper=upper) if re.fullmatch(r"\d{2,6}(\.\d{1,6})?", text) else ""
    if not result:
        raise BadRequest(f"{name}: {text[:80]!r} is not a valid time (HHMMSS.FFFFFF)")
    return result


def combined_datetime_match(date: q.Range, time: q.Range) -> q.Range:
    """C.2.2.2.5.1 Range Matching of Attributes of VR of DA and TM combined: StudyDate D1-D2 with
    StudyTime T1-T2 means from D1 T1 to D2 T2 (an open date end stays open)."""
    low = date.low + (time.low or "000000.000000") if date.low else None
    high = date.high + (time.high or "235959.999999") if date.high else None
    return q.Range(low, high)


def name_match(name: str, value: str, fuzzy: bool):
    """PN matching: case- and accent-insensitive (the index keeps folded names, and so is the value).

    Wildcards: C.2.2.2.4. ``fuzzymatching=true`` without wildcards (PS3.18 8.3.4.1): each word of the
    value is the start of a name component (``joh`` matches ``Doe^John``). Otherwise C.2.2.2.1.
    """
    folded = fold_name(value)
    if has_wildcard(folded):
        return q.NameWildcard(folded)
    if fuzzy:
        tokens = tuple(token for token in re.split(r"[\^ =,]+", folded) if token)
        if not tokens:
            raise BadRequest(f"{name}: nothing to match in {value[:80]!r}")
        return q.FuzzyName(tokens)
    return q.NameEquals(folded.rstrip("^"))


def text_match(name: str, value: str, key: a.MatchKey):
    if has_wildcard(value):
        if a.WILDCARD not in key.kinds:
            raise BadRequest(f"{name} does not take wildcards")
        return wildcard_match(value)
    if a.LIST in key.kinds and ("," in value or "\\" in value):
        return value_list_match(name, value)
    return single_value_match(value)


def match_for(key: a.MatchKey, name: str, value: str, fuzzy: bool):
    """The match of one attribute; BadRequest when the value is malformed for the attribute's VR."""
    if key.vr == "UI":
        return uid_list_match(name, value)
    if key.vr == "DA":
        return date_range_match(name, value)
    if key.vr == "TM":
        return time_range_match(name, value)
    if key.vr == "PN":
        return name_match(name, value, fuzzy)
    if key.vr == "IS":
        return integer_match(name, value)
    if key.keyword == "ModalitiesInStudy":
        return value_list_match(name, value)
    return text_match(name, value, key)


# --- the query -------------------------------------------------------------------------------------------

def _integer_parameter(name: str, value: str, minimum: int) -> int:
    if not re.fullmatch(r"\d+", value.strip()):
        raise BadRequest(f"{name} must be a whole number of at least {minimum}, not {value[:40]!r}")
    number = int(value)
    if number < minimum:
        raise BadRequest(f"{name} must be at least {minimum}, not {number}")
    if number >= 2**31:
        raise BadRequest(f"{name} must be less than {2**31}, not {value[:40]}")
    return number


def parse_timezone(value: str) -> int:
    """PS3.18 8.3.4.6: ``TimezoneOffsetFromUTC=+HHMM`` / ``-HHMM`` -> minutes east of UTC."""
    text = value.strip()
    if value.startswith(" ") and text[:1].isdigit():
        text = "+" + text          # an unencoded "+" in the query string arrives as a space
    match = _OFFSET.match(text)
    if not match or int(match.group(2)) > 14 or int(match.group(3)) > 59:
        raise BadRequest(f"TimezoneOffsetFromUTC: {value[:40]!r} is not an offset like +0100 or -0500")
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    return minutes if match.group(1) == "+" else -minutes


def check_query_string(raw: str) -> None:
    """RFC 3986: a ``%`` starts a two-hex-digit escape; anything else is a malformed request."""
    bad = _BAD_ESCAPE.search(raw or "")
    if bad:
        escape = raw[bad.start():bad.start() + 3]
        raise BadRequest(f"malformed percent-encoding {escape!r} in the query string")


def parse_query(level: str, args: list[tuple[str, str]], *, study_uid: str | None = None,
                series_uid: str | None = None, maximum_results: int = 1000, raw_query: str = "") -> QidoQuery:
    """Parse the query parameters of a search at ``level`` (values already percent-decoded)."""
    check_query_string(raw_query)
    query = QidoQuery(level=level, study_uid=study_uid, series_uid=series_uid)
    seen: set[str] = set()
    limit = None
    fuzzy = False
    timezone = None
    matches: dict[str, tuple[a.MatchKey, str, str]] = {}
    extra_return: list[str] = []
    includes: list[str] = []

    for name, value in args:
        if "\x00" in name or "\x00" in value:
            raise BadRequest(f"query parameter {name[:80]!r} contains a NUL character")
        if name in (a.LIMIT, a.OFFSET, a.FUZZY_MATCHING, a.TIMEZONE):
            if name in seen:
                raise BadRequest(f"{name} is given more than once")
            seen.add(name)
        if name == a.LIMIT:
            limit = _integer_parameter(name, value, 1)
        elif name == a.OFFSET:
            query.offset = _integer_parameter(name, value, 0)
        elif name == a.FUZZY_MATCHING:
            if value.strip().lower() not in ("true", "false"):
                raise BadRequest(f"fuzzymatching must be true or false, not {value[:40]!r}")
            fuzzy = value.strip().lower() == "true"
        elif name == a.INCLUDE_FIELD:
            includes += [part.strip() for part in value.split(",")]
        elif name == a.TIMEZONE:
            timezone = parse_timezone(value)
        else:
            attribute = resolve_attribute(name)
            if attribute is None:
                raise BadRequest(f"unknown query parameter {name[:80]!r}: not a DICOM keyword or tag, "
                                 "nor one of limit, offset, fuzzymatching, includefield, "
                                 "TimezoneOffsetFromUTC")
            key = a.MATCH_KEYS_BY_TAG.get(attribute.dotted_tag)
            if key is None:
                query.warnings.append(f"{attribute.name} is not a matching key of this server; it was "
                                      "ignored for matching")
                extra_return.append(attribute.tags[0])
                continue
            if not key.matchable_at(level):
                query.warnings.append(f"{key.keyword} is not a matching key of a {level} search; "
                                      "it was ignored")
                continue
            if key.keyword in matches:
                raise BadRequest(f"{key.keyword} is given more than once")
            matches[key.keyword] = (key, name, value.strip())

    for item in includes:
        if not item:
            continue
        if item == a.INCLUDE_ALL:
            query.include_all = True
            continue
        attribute = resolve_attribute(item)
        if attribute is None:
            raise BadRequest(f"includefield: {item[:80]!r} is not a DICOM keyword or tag")
        extra_return.append(attribute.tags[0])

    _add_conditions(query, matches, fuzzy, timezone)
    for keyword, path_uid in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid)):
        if path_uid is not None:
            query.conditions.append(q.Condition(keyword, q.Equals((require_uid(path_uid, keyword),))))

    defaults = a.default_return_keywords(level, study_uid is not None, series_uid is not None)
    tags = [_tag_of(keyword) for keyword in defaults]
    tags += [key.tag.split(".")[0] for key, _, _ in matches.values()]
    query.return_tags = list(dict.fromkeys(tags + extra_return))

    query.capped = limit is None or limit > maximum_results
    query.limit = maximum_results if query.capped else limit
    return query


def _add_conditions(query: QidoQuery, matches: dict, fuzzy: bool, timezone: int | None) -> None:
    built: dict[str, object] = {}
    for keyword, (key, name, value) in matches.items():
        if universal_match(value):
            continue
        built[keyword] = match_for(key, name, value, fuzzy)
    date, time = built.get("StudyDate"), built.get("StudyTime")
    if date is not None and (time is not None or timezone is not None):
        combined = combined_datetime_match(date, time or q.Range(None, None))
        del built["StudyDate"]
        built.pop("StudyTime", None)
        if timezone is not None:
            built["StudyDateTime"] = q.ZonedRange(combined.low, combined.high, timezone)
        else:
            built["StudyDateTime"] = combined
    for keyword, match in built.items():
        query.conditions.append(q.Condition(keyword, match))


# --- running it ------------------------------------------------------------------------------------------

def needs_metadata(query: QidoQuery) -> bool:
    """Does any result need attributes that only the stored instance metadata holds?"""
    if query.include_all:
        return True
    returnable = q.RETURNABLE[query.level] | _COMPUTED
    if query.level == a.SERIES:     # fetched for the series that have one (the index knows which)
        returnable |= {"RequestAttributesSequence"}
    return any((_keyword(tag) or tag) not in returnable for tag in query.return_tags)


def run_query(engine, query: QidoQuery, retrieve_base: str) -> QidoResult:
    metadata_needed = needs_metadata(query)
    search = q.Search(level=query.level, conditions=query.conditions, limit=query.limit + 1,
                      offset=query.offset, with_metadata=query.level == a.INSTANCE and metadata_needed)
    rows = q.search(engine, search)
    warnings = list(query.warnings)
    if len(rows) > query.limit:
        rows = rows[:query.limit]
        if query.capped:
            warnings.append(f"The result was limited to {query.limit} matches (qido:maximumResultsLimit); "
                            "use limit and offset to page through the rest")

    fragments: dict[int, str] = {}
    if query.level == a.STUDY and metadata_needed:
        fragments = q.representative_metadata(engine, q.STUDY, [row[q.STUDY_KEY] for row in rows])
    elif query.level == a.SERIES:
        wanted = [row[q.SERIES_KEY] for row in rows if metadata_needed or (
            row[q.HAS_REQUEST_ATTRIBUTES] and _tag_of("RequestAttributesSequence") in query.return_tags)]
        fragments = q.representative_metadata(engine, q.SERIES, wanted)

    datasets = []
    for row in rows:
        if query.level == a.INSTANCE:
            stored = row.get(q.METADATA)
        else:
            stored = fragments.get(row[q.STUDY_KEY] if query.level == a.STUDY else row[q.SERIES_KEY])
        datasets.append(build_dataset(query, row, json.loads(stored) if stored else {}, retrieve_base))
    return QidoResult(datasets, warnings)


# --- results as DICOM JSON -------------------------------------------------------------------------------

def _retrieve_url(level: str, row: dict, base: str) -> str:
    url = f"{base}/studies/{quote(row['StudyInstanceUID'], safe='.')}"
    if level in (a.SERIES, a.INSTANCE):
        url += f"/series/{quote(row['SeriesInstanceUID'], safe='.')}"
    if level == a.INSTANCE:
        url += f"/instances/{quote(row['SOPInstanceUID'], safe='.')}"
    return url


def _index_element(vr: str, value) -> dict:
    """A DICOM JSON element from an index column value ('' / None: present, without a value)."""
    element = {"vr": vr}
    if value is None or value == "":
        return element
    if vr in ("IS", "US", "UL", "SS", "SL"):
        element["Value"] = [int(value)]
    elif vr == "PN":
        groups = str(value).split("=")
        element["Value"] = [{group: text for group, text in zip(_PN_GROUPS, groups) if text}]
    elif vr == "TM":
        text = str(value)
        element["Value"] = [text[:-7] if text.endswith(".000000") else text]
    else:
        element["Value"] = str(value).split("\\")
    return element


def _stored_element(element: dict, retrieve_base: str) -> dict | None:
    """An element of stored metadata as returned: bulk data left out (QIDO returns no bulk data)."""
    if "BulkDataURI" in element or (element.get("vr") in _BULK_VRS and "InlineBinary" in element):
        return None
    element = copy.deepcopy(element)
    _resolve_bulk_uris(element, retrieve_base)
    return element


def _resolve_bulk_uris(element: dict, base: str) -> None:
    for item in element.get("Value", []) if element.get("vr") == "SQ" else []:
        for child in (item or {}).values():
            uri = child.get("BulkDataURI")
            if isinstance(uri, str) and uri.startswith(BULK_BASE_TOKEN):
                child["BulkDataURI"] = f"{base}/{uri[len(BULK_BASE_TOKEN):]}"
            _resolve_bulk_uris(child, base)


def _level_attributes(query: QidoQuery) -> frozenset:
    """Keywords that includefield=all returns from a study's or series' representative instance."""
    if query.level == a.STUDY:
        return a.STUDY_LEVEL_ATTRIBUTES
    if query.study_uid is None:
        return a.SERIES_LEVEL_ATTRIBUTES | a.STUDY_LEVEL_ATTRIBUTES
    return a.SERIES_LEVEL_ATTRIBUTES


def build_dataset(query: QidoQuery, row: dict, stored: dict, retrieve_base: str) -> dict:
    """One result: the index values, computed attributes, and attributes taken from stored metadata."""
    returnable = q.RETURNABLE[query.level]
    result: dict[str, dict] = {}
    tags = list(query.return_tags)
    if query.include_all:
        if query.level == a.INSTANCE:
            tags += [tag for tag in stored if tag not in _PIXEL_TAGS]
        else:
            allowed = _level_attributes(query)
            tags += [tag for tag in stored if _keyword(tag) in allowed]
        tags += [_tag_of(keyword) for keyword in returnable]
    for tag in dict.fromkeys(tags):
        keyword = _keyword(tag)
        if keyword == "SpecificCharacterSet":
            result[tag] = {"vr": "CS", "Value": [a.RESPONSE_CHARACTER_SET]}
        elif keyword == "InstanceAvailability":
            result[tag] = {"vr": "CS", "Value": [a.INSTANCE_AVAILABILITY]}
        elif keyword == "RetrieveURL":
            result[tag] = {"vr": "UR", "Value": [_retrieve_url(query.level, row, retrieve_base)]}
        elif keyword in returnable:
            result[tag] = _index_element(_vr(tag), row.get(keyword))
        elif tag in stored:
            element = _stored_element(stored[tag], retrieve_base)
            if element is not None:
                result[tag] = element
        elif keyword and keyword != "RequestAttributesSequence" and not query.include_all:
            result[tag] = {"vr": _vr(tag)}       # asked for, but this object has no value
    return {tag: result[tag] for tag in sorted(result)}
