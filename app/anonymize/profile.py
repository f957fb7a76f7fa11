"""PS3.15 Annex E de-identification: Table E.1-1 as data (profile_table.csv) plus one pure apply function.

How an attribute's action is chosen (``compile_profile``):

1. The row of the table: the exact tag; else a repeating-group row ((50xx,xxxx) curves, (60xx,3000) overlay
   data, (60xx,4000) overlay comments); else, for an odd group, the "(gggg,eeee)" private-attributes row.
   Attributes without a row are kept (PS3.15 lists what must be treated), but every sequence is entered and
   every UI value that is not a well-known UID is still replaced (see below).
2. The Options chosen: when one or more of them has an entry in the row, that entry is the action. If two
   chosen Options disagree (only K versus C happens in the table: e.g. Retain Device Identity K and Retain
   Longitudinal Temporal Information Modified Dates C for Date of Last Calibration), the stricter one wins:
   C, so a retained device date is still shifted.
3. Otherwise the Basic Profile action, with the compound codes resolved to the choice that is valid for any
   Type of the attribute (this server cannot know the IOD's Type of every attribute in every nested item):
   X/Z -> Z, X/D -> D, Z/D -> D, X/Z/D -> D, X/Z/U* -> U (the sequence is kept and the UIDs in its items
   are replaced; an empty value stays empty).

What each action does here (PS3.15 E.1.1 and the legend of Table E.1-1):

- X: the attribute is removed.
- Z: a zero-length value (an empty sequence for SQ).
- D: a dummy value that fits the VR (``DUMMY_VALUES``); a sequence becomes one empty item; a UI is replaced
  like U. Patient ID gets a stable pseudonym ("ANON-" + 16 hex digits of an HMAC of the original ID) rather
  than one fixed dummy, so one patient's studies stay together and different patients stay apart.
- U: each UID becomes "2.25." + the decimal of the first 128 bits of HMAC-SHA256(secret, UID): the same
  original UID always gives the same new one for the same secret (across uploads, processes and restarts),
  so studies, series and references inside sequences (Referenced SOP Instance UID, ...) stay consistent.
- K: kept; a kept sequence is entered and the table applied to its items.
- C (clean), by VR: DA and DT are shifted back by a per-patient number of days (1..3650, from the HMAC of the
  original Patient ID: Retain Longitudinal Temporal Information Modified Dates); TM is kept (a whole-day
  shift leaves times unchanged); a sequence is kept and the table applied to its items (Clean Structured
  Content, coded descriptors); text (AE titles under Retain Device Identity, descriptors in LO, SH, ST, LT,
  UT, UC, PN, CS) is kept only when it passes a conservative screen (it contains none of the identifying
  strings that this run removes or replaces from the data set, no run of 5 or more digits and no "@"), else
  each such value becomes "REMOVED"; anything else (overlay and curve bitmaps, binary values such as OB
  timestamps) cannot be cleaned and is removed.
- Group Length elements (gggg,0000) of the data set are removed (retired, and stale after the changes).

Also, without Retain UIDs every UI element that has no row (Referenced SOP Instance UID inside any sequence,
Mapping Resource UID, ...) is replaced like U, except class-like attributes (``CLASS_UID_KEYWORDS``: SOP
Class, Transfer Syntax, Coding Scheme UIDs, ...) and any value found in pydicom's UID dictionary (well-known
SOP Classes, Transfer Syntaxes, frames of reference such as the UTC synchronization frame).

Private attributes: the standard's Safe Private list (Table E.3.10-1) is not transcribed here, so every
private attribute and private creator is removed, with or without Retain Safe Private (which therefore keeps
nothing: still conformant, since retaining safe private attributes is permitted, not required).

Pixel data is not touched: there is no Clean Pixel Data (113101) or Clean Recognizable Visual Features
(113102) Option; burned-in annotation stays as sent.

After the actions: Patient Identity Removed (0012,0062) = YES, De-identification Method (0012,0063) lists the
Profile and Options by name, De-identification Method Code Sequence (0012,0064) gets their CID 7050 codes,
Longitudinal Temporal Information Modified (0028,0303) says MODIFIED / UNMODIFIED / REMOVED, and the file
meta Media Storage SOP Instance UID follows the new SOP Instance UID.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import hmac
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID_dictionary

from app.errors import ConfigurationError

TABLE_PATH = Path(__file__).with_name("profile_table.csv")
TABLE_EDITION = "2024b"


# --------------------------------------------------------------------------------------------------------
# The Profile and its Options (column of profile_table.csv, CID 7050 code, code meaning, accepted spellings)
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OptionDef:
    column: str
    code: str
    meaning: str
    spellings: tuple[str, ...]


BASIC = "basic_profile"

OPTION_DEFS: tuple[OptionDef, ...] = (
    OptionDef(BASIC, "113100", "Basic Application Confidentiality Profile", ("BasicProfile", "Basic")),
    OptionDef("retain_safe_private", "113111", "Retain Safe Private Option", ("RetainSafePrivate",)),
    OptionDef("retain_uids", "113110", "Retain UIDs Option", ("RetainUIDs", "RetainUID")),
    OptionDef("retain_device_identity", "113109", "Retain Device Identity Option",
              ("RetainDeviceIdent", "RetainDeviceIdentity")),
    OptionDef("retain_institution_identity", "113112", "Retain Institution Identity Option",
              ("RetainInstitutionIdent", "RetainInstitutionIdentity")),
    OptionDef("retain_patient_characteristics", "113108", "Retain Patient Characteristics Option",
              ("RetainPatientChars", "RetainPatientCharacteristics")),
    OptionDef("retain_long_full_dates", "113106",
              "Retain Longitudinal Temporal Information Full Dates Option",
              ("RetainLongFullDates", "RetainLongitudinalFullDates",
               "RetainLongitudinalTemporalInformationFullDates")),
    OptionDef("retain_long_modified_dates", "113107",
              "Retain Longitudinal Temporal Information Modified Dates Option",
              ("RetainLongModifiedDates", "RetainLongModifDates", "RetainLongitudinalModifiedDates",
               "RetainLongitudinalTemporalInformationModifiedDates")),
    OptionDef("clean_descriptors", "113105", "Clean Descriptors Option", ("CleanDescriptors", "CleanDesc")),
    OptionDef("clean_structured_content", "113104", "Clean Structured Content Option",
              ("CleanStructuredContent", "CleanStructContent", "CleanStructCont", "CleanStructdCont")),
    OptionDef("clean_graphics", "113103", "Clean Graphics Option", ("CleanGraphics", "CleanGraph")),
)
OPTION_COLUMNS = tuple(o.column for o in OPTION_DEFS if o.column != BASIC)
_BY_COLUMN = {o.column: o for o in OPTION_DEFS}


def _fold(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_SPELLING = {_fold(s): o.column for o in OPTION_DEFS for s in (*o.spellings, o.column)}
VALID_OPTION_NAMES = tuple(o.spellings[0] for o in OPTION_DEFS)


@dataclass(frozen=True)
class Options:
    """The Basic Profile (always applied) plus the chosen Options, by table column."""

    columns: frozenset[str] = frozenset()

    def __contains__(self, column: str) -> bool:
        return column in self.columns

    @property
    def definitions(self) -> list[OptionDef]:
        """Profile first, then the Options in table order."""
        return [o for o in OPTION_DEFS if o.column == BASIC or o.column in self.columns]

    @property
    def description(self) -> str:
        return ", ".join(o.spellings[0] for o in self.definitions)


def parse_options(text: str | Iterable[str] | Options) -> Options:
    """``BasicProfile,RetainUIDs,...`` (names case-insensitive; DICOMcloud's spellings or the table's column
    names) -> Options. ConfigurationError names every unknown option and the valid ones."""
    if isinstance(text, Options):
        return text
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    columns: set[str] = set()
    unknown = []
    for name in filter(None, names):
        column = _BY_SPELLING.get(_fold(name))
        if column is None:
            unknown.append(name)
        elif column != BASIC:
            columns.add(column)
    problems = []
    if unknown:
        problems.append(f"app:anonymizerOptions: unknown option(s) {', '.join(map(repr, unknown))}; valid "
                        f"names (case-insensitive): {', '.join(VALID_OPTION_NAMES)}")
    if {"retain_long_full_dates", "retain_long_modified_dates"} <= columns:
        problems.append("app:anonymizerOptions: RetainLongFullDates and RetainLongModifiedDates exclude each "
                        "other; choose one")
    if problems:
        raise ConfigurationError(problems)
    return Options(frozenset(columns))


# --------------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    tag: str                 # as written in the table, e.g. "(0010,0010)", "(60xx,3000)", "(gggg,eeee)"
    name: str
    basic: str               # Basic Profile action as written (may be compound, e.g. "X/Z/D")
    options: dict            # column -> action, only the columns with an entry

    @property
    def is_single_tag(self) -> bool:
        return re.fullmatch(r"\([0-9A-F]{4},[0-9A-F]{4}\)", self.tag) is not None

    @property
    def tag_value(self) -> int:
        return int(self.tag[1:5] + self.tag[6:10], 16)


@lru_cache(maxsize=1)
def load_table() -> tuple[Row, ...]:
    """The rows of profile_table.csv, read once."""
    with open(TABLE_PATH, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(line for line in handle if not line.startswith("#"))
        return tuple(Row(tag=r["tag"], name=r["name"], basic=r["basic_profile"],
                         options={c: r[c] for c in OPTION_COLUMNS if r[c]}) for r in reader)


COMPOUND = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
STRICTNESS = "KCUDZX"      # later = stricter; used when two chosen Options disagree


def resolve(row: Row, options: Options) -> str:
    """The single action for ``row`` under ``options`` (see the module docstring)."""
    chosen = [action for column, action in row.options.items() if column in options.columns]
    if chosen:
        return max(chosen, key=STRICTNESS.index)
    return COMPOUND.get(row.basic, row.basic)


@dataclass(frozen=True)
class CompiledProfile:
    options: Options
    exact: dict          # tag -> action
    patterns: tuple      # (mask, value, action)
    private: str

    def action_for(self, tag: int) -> str | None:
        action = self.exact.get(tag)
        if action is not None:
            return action
        group = tag >> 16
        if group & 1:
            return self.private if group > 0x0008 and group != 0xFFFF else None
        for mask, value, pattern_action in self.patterns:
            if tag & mask == value:
                return pattern_action
        return None


_PATTERN_GROUPS = {"50xx": 0x5000, "60xx": 0x6000}


@lru_cache(maxsize=64)
def compile_profile(options: Options) -> CompiledProfile:
    exact: dict[int, str] = {}
    patterns = []
    private = "X"
    for row in load_table():
        action = resolve(row, options)
        if row.is_single_tag:
            exact[row.tag_value] = action
        elif row.tag == "(gggg,eeee)":
            # Retain Safe Private gives C, but without the Safe Private list (Table E.3.10-1) nothing is
            # known to be safe: every private attribute is removed.
            private = "X" if action == "C" else action
        else:
            group_text, element_text = row.tag[1:5], row.tag[6:10]
            base = _PATTERN_GROUPS[group_text]
            # Repeating groups 50xx/60xx are the even groups 0x5000..0x501E / 0x6000..0x601E.
            group_mask, group_value = 0xFFE1, base
            if element_text == "xxxx":
                patterns.append((group_mask << 16, group_value << 16, action))
            else:
                element = int(element_text, 16)
                patterns.append(((group_mask << 16) | 0xFFFF, (group_value << 16) | element, action))
    return CompiledProfile(options, exact, tuple(patterns), private)


# --------------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------------

DUMMY_TEXT = "ANONYMIZED"
CLEANED_TEXT = "REMOVED"
DUMMY_VALUES: dict[str, object] = {
    "AE": DUMMY_TEXT, "AS": "000Y", "CS": DUMMY_TEXT, "DA": "19000101", "DT": "19000101000000",
    "TM": "000000", "DS": "0", "IS": "0", "LO": DUMMY_TEXT, "LT": DUMMY_TEXT, "PN": DUMMY_TEXT,
    "SH": DUMMY_TEXT, "ST": DUMMY_TEXT, "UC": DUMMY_TEXT, "UT": DUMMY_TEXT, "UR": DUMMY_TEXT,
    "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0, "AT": 0,
    "OB": b"\0\0", "OW": b"\0\0", "UN": b"\0\0", "OF": b"\0" * 4, "OL": b"\0" * 4, "OD": b"\0" * 8,
    "OV": b"\0" * 8,
}
TEXT_VRS = {"AE", "LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS"}
# UI attributes that name a class, scheme or syntax rather than an instance: never replaced (nor any UI
# attribute whose keyword has "ClassUID" or "TransferSyntaxUID" in it).
CLASS_UID_KEYWORDS = frozenset({
    "SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
    "ReferencedSOPClassUIDInFile", "ReferencedTransferSyntaxUIDInFile", "ImplementationClassUID",
    "CodingSchemeUID", "ContextGroupExtensionCreatorUID", "MappingResourceUID",
    "PrivateInformationCreatorUID",
    "SOPClassesInStudy", "RelatedGeneralSOPClassUID", "OriginalSpecializedSOPClassUID",
    "SOPClassesSupported", "RequestedSOPClassUID", "AffectedSOPClassUID",
    "ReferencedRelatedGeneralSOPClassUIDInFile", "InstanceCreatorUID", "TemplateExtensionCreatorUID",
    "CreatorVersionUID", "ContextUID",
})
PATIENT_ID = 0x00100020
SOP_INSTANCE_UID = 0x00080018
DATE_SHIFT_MAX_DAYS = 3650


def map_uid(uid: str, secret: bytes) -> str:
    """The consistent replacement of ``uid``: "2.25." + 128 bits of HMAC-SHA256(secret, uid) (<= 44 chars).

    Well-known UIDs (pydicom's UID dictionary) and empty values are returned unchanged."""
    uid = str(uid).strip().rstrip("\0")
    if not uid or uid in UID_dictionary:
        return uid
    digest = hmac.new(secret, b"uid\0" + uid.encode("ascii", "replace"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def patient_pseudonym(patient_id: str, secret: bytes) -> str:
    digest = hmac.new(secret, b"patient-id\0" + patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "ANON-" + digest[:16].upper()


def date_offset_days(patient_id: str, secret: bytes) -> int:
    """Days (1..3650) that dates of this patient move back under Retain Longitudinal Modified Dates."""
    digest = hmac.new(secret, b"date-offset\0" + patient_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % DATE_SHIFT_MAX_DAYS + 1


def shift_date(value: str, days: int) -> str:
    """Shift a DA value (YYYYMMDD) or the date of a DT value back by ``days``; '' when it is not a date."""
    value = value.strip()
    try:
        moved = _dt.datetime.strptime(value[:8], "%Y%m%d").date() - _dt.timedelta(days=days)
    except ValueError:
        return ""
    if moved.year < 1:
        return ""
    return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}" + value[8:]


# --------------------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------------------

@dataclass
class DeidentificationReport:
    """What ``deidentify`` did; paths look like ``ReferencedSeriesSequence[0].SeriesInstanceUID``."""

    options: Options
    removed: list[str] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    uid_map: dict[str, str] = field(default_factory=dict)
    date_offset_days: int | None = None
    original_sop_instance_uid: str = ""
    sop_instance_uid: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.emptied or self.replaced or self.cleaned or self.uid_map)


class _Run:
    def __init__(self, profile: CompiledProfile, secret: bytes, report: DeidentificationReport,
                 identifiers: list[str], date_offset: int):
        self.profile = profile
        self.secret = secret
        self.report = report
        self.identifiers = identifiers
        self.date_offset = date_offset
        self.retain_uids = "retain_uids" in profile.options

    def uid(self, value: str) -> str:
        new = map_uid(value, self.secret)
        if new != str(value).strip():
            self.report.uid_map[str(value).strip()] = new
        return new


def _vr_of(ds: Dataset, tag: BaseTag) -> str:
    element = ds.get_item(tag, keep_deferred=True)
    vr = getattr(element, "VR", None)
    if not vr or vr == "UN":            # implicit VR, or a known attribute sent as UN (pydicom converts it)
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    return vr.split(" or ")[0]


def _label(tag: BaseTag, path: str) -> str:
    name = keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"
    return f"{path}.{name}" if path else name


def _values(element: DataElement) -> list:
    value = element.value
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def _set(ds: Dataset, tag: BaseTag, vr: str, value) -> None:
    ds[tag] = DataElement(tag, vr, value)


def _identifying_strings(ds: Dataset, profile: CompiledProfile, found: set[str]) -> None:
    """Every PN component and LO/SH value that this run removes or replaces (for the C text screen)."""
    for tag in list(ds.keys()):
        vr = _vr_of(ds, tag)
        if vr == "SQ":
            for item in ds[tag].value or []:
                _identifying_strings(item, profile, found)
            continue
        if vr not in ("PN", "LO", "SH") or profile.action_for(tag) not in ("X", "Z", "D", "U"):
            continue
        for value in _values(ds[tag]):
            for part in re.split(r"[\^=\s,]+", str(value)):
                if len(part.strip()) >= 3:
                    found.add(part.strip().lower())


def _screen(text: str, run: _Run) -> str:
    lowered = text.lower()
    if re.search(r"\d{5,}", text) or "@" in text or any(i in lowered for i in run.identifiers):
        return CLEANED_TEXT
    return text


def _apply(ds: Dataset, run: _Run, path: str) -> None:
    for tag in list(ds.keys()):
        tag = Tag(tag)
        if tag.element == 0:            # Group Length (retired in data sets): stale after the changes
            _remove(ds, tag, "UL", run, _label(tag, path))
            continue
        vr = _vr_of(ds, tag)
        action = run.profile.action_for(tag)
        label = _label(tag, path)
        if action is None:
            if vr == "SQ":
                _recurse(ds, tag, run, label)
            elif vr == "UI" and not run.retain_uids and _replaceable_uid(tag):
                _replace_uids(ds, tag, run, label)
            continue
        _ACTIONS[action](ds, tag, vr, run, label)


def _replaceable_uid(tag: BaseTag) -> bool:
    keyword = keyword_for_tag(tag)
    return not (keyword in CLASS_UID_KEYWORDS or "ClassUID" in keyword or "TransferSyntaxUID" in keyword)


def _recurse(ds: Dataset, tag: BaseTag, run: _Run, label: str) -> None:
    for index, item in enumerate(ds[tag].value or []):
        _apply(item, run, f"{label}[{index}]")


def _replace_uids(ds: Dataset, tag: BaseTag, run: _Run, label: str) -> None:
    values = [str(v) for v in _values(ds[tag])]
    new = [run.uid(v) for v in values]
    if new != values:
        ds[tag].value = new if len(new) > 1 else new[0]
        run.report.replaced.append(label)


def _remove(ds, tag, vr, run, label):
    del ds[tag]
    run.report.removed.append(label)


def _empty(ds, tag, vr, run, label):
    _set(ds, tag, vr, Sequence() if vr == "SQ" else None)
    run.report.emptied.append(label)


def _dummy(ds, tag, vr, run, label):
    if vr == "UI":
        values = _values(ds[tag])
        if values:
            return _replace_uids(ds, tag, run, label)
        _set(ds, tag, vr, map_uid(f"dummy:{label}", run.secret))
    elif vr == "SQ":
        _set(ds, tag, vr, Sequence([Dataset()]))
    elif tag == PATIENT_ID:
        original = ds[tag].value or ""
        _set(ds, tag, vr, patient_pseudonym(str(original), run.secret))
    else:
        _set(ds, tag, vr, DUMMY_VALUES.get(vr, b"\0\0"))
    run.report.replaced.append(label)


def _uid(ds, tag, vr, run, label):
    if vr == "SQ":                      # X/Z/U*: keep the sequence, replace the UIDs in its items
        return _recurse(ds, tag, run, label)
    if vr != "UI":
        return _dummy(ds, tag, vr, run, label)
    _replace_uids(ds, tag, run, label)


def _keep(ds, tag, vr, run, label):
    if vr == "SQ":
        _recurse(ds, tag, run, label)


def _clean(ds, tag, vr, run, label):
    if vr == "SQ":
        return _recurse(ds, tag, run, label)
    if vr == "TM":
        return
    if vr in ("DA", "DT"):
        values = [str(v) for v in _values(ds[tag])]
        shifted = [shift_date(v, run.date_offset) for v in values]
        if shifted != values:
            ds[tag].value = shifted if len(shifted) > 1 else (shifted[0] if shifted else None)
            run.report.cleaned.append(label)
        return
    if vr in TEXT_VRS:
        values = [str(v) for v in _values(ds[tag])]
        screened = [_screen(v, run) for v in values]
        if screened != values:
            ds[tag].value = screened if len(screened) > 1 else screened[0]
            run.report.cleaned.append(label)
        return
    _remove(ds, tag, vr, run, label)    # bitmaps and binary values cannot be cleaned here


_ACTIONS = {"X": _remove, "Z": _empty, "D": _dummy, "U": _uid, "K": _keep, "C": _clean}


def _method_code_item(option: OptionDef) -> Dataset:
    item = Dataset()
    item.CodeValue = option.code
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = option.meaning
    return item


def deidentify(dataset: Dataset, options: Options | str, uid_secret: bytes | str) -> DeidentificationReport:
    """De-identify ``dataset`` in place by PS3.15 Table E.1-1 with ``options``; see the module docstring.

    ``uid_secret`` keys the UID mapping, the Patient ID pseudonym and the date offset: the same secret gives
    the same results in every process. Pixel data is never read or changed.
    """
    options = parse_options(options)
    secret = uid_secret.encode("utf-8") if isinstance(uid_secret, str) else bytes(uid_secret)
    profile = compile_profile(options)
    report = DeidentificationReport(options=options)
    report.original_sop_instance_uid = str(dataset.get("SOPInstanceUID", "") or "")
    patient_id = str(dataset.get("PatientID", "") or "")
    offset = date_offset_days(patient_id, secret)
    if "retain_long_modified_dates" in options:
        report.date_offset_days = offset
    identifiers: set[str] = set()
    _identifying_strings(dataset, profile, identifiers)
    run = _Run(profile, secret, report, sorted(identifiers), offset)

    _apply(dataset, run, "")

    dataset.PatientIdentityRemoved = "YES"
    definitions = options.definitions
    dataset.DeidentificationMethod = [o.meaning for o in definitions]
    existing = list(dataset.get("DeidentificationMethodCodeSequence", None) or [])
    present = {(str(i.get("CodingSchemeDesignator", "")), str(i.get("CodeValue", ""))) for i in existing}
    dataset.DeidentificationMethodCodeSequence = existing + [
        _method_code_item(o) for o in definitions if ("DCM", o.code) not in present]
    if "retain_long_modified_dates" in options:
        dataset.LongitudinalTemporalInformationModified = "MODIFIED"
    elif "retain_long_full_dates" in options:
        dataset.LongitudinalTemporalInformationModified = "UNMODIFIED"
    else:
        dataset.LongitudinalTemporalInformationModified = "REMOVED"

    report.sop_instance_uid = str(dataset.get("SOPInstanceUID", "") or "")
    file_meta = getattr(dataset, "file_meta", None)
    if file_meta is not None and "MediaStorageSOPInstanceUID" in file_meta and report.sop_instance_uid:
        if file_meta.MediaStorageSOPInstanceUID != report.sop_instance_uid:
            file_meta.MediaStorageSOPInstanceUID = report.sop_instance_uid
    return report


class Deidentifier:
    """Options + secret, built once from settings; what STOW-RS (and WADO-URI ``anonymize=yes``) call.

    ``uid_secret`` may be a callable, resolved on first use (so a server that never de-identifies never
    creates App_Data/anonymizer.key)."""

    def __init__(self, options: Options | str, uid_secret: bytes | str | Callable[[], bytes]):
        self.options = parse_options(options)
        self._source = uid_secret
        self._resolved: bytes | None = None
        self._lock = threading.Lock()
        compile_profile(self.options)

    @property
    def _secret(self) -> bytes:
        if self._resolved is None:
            with self._lock:
                if self._resolved is None:
                    source = self._source() if callable(self._source) else self._source
                    self._resolved = source.encode("utf-8") if isinstance(source, str) else bytes(source)
        return self._resolved

    def resolve_secret(self) -> None:
        """Resolve (and for the default, create) the key now: at start when de-identifying on store."""
        self._secret

    @property
    def retains_uids(self) -> bool:
        return "retain_uids" in self.options

    def map_uid(self, uid: str) -> str:
        """What ``uid`` becomes in de-identified objects (itself under Retain UIDs)."""
        return str(uid) if self.retains_uids else map_uid(uid, self._secret)

    def deidentify(self, dataset: Dataset) -> DeidentificationReport:
        return deidentify(dataset, self.options, self._secret)

    def __repr__(self) -> str:          # never shows the secret
        return f"Deidentifier({self.options.description!r})"
