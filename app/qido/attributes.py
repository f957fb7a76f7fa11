"""QIDO-RS attributes as data: what each level matches on, and what it returns by default.

Matching keys: PS3.18 Tables 10.6.1-5 (study, incl. the patient attributes of the Study Root model),
10.6.1-6 (series) and 10.6.1-7 (instance); plus PatientBirthDate, which the index also serves. Which
database column serves a key is app/index/query.py's business (the only place column names appear);
this module only names keys by their DICOM keyword.

Default return attributes: PS3.18 Tables 10.6.3-3 (study), 10.6.3-4 (series), 10.6.3-5 (instance).
"""
from __future__ import annotations

from dataclasses import dataclass

STUDY, SERIES, INSTANCE = "study", "series", "instance"
LEVELS = (STUDY, SERIES, INSTANCE)
_DEPTH = {STUDY: 0, SERIES: 1, INSTANCE: 2}

# Matching kinds (the PS3.4 C.2.2.2 sub-section that defines each):
SINGLE = "single value"           # C.2.2.2.1
LIST = "list"                     # C.2.2.2.2 (UID lists; also CS value lists here)
UNIVERSAL = "universal"           # C.2.2.2.3
WILDCARD = "wildcard"             # C.2.2.2.4
RANGE = "range"                   # C.2.2.2.5
SEQUENCE = "sequence"             # C.2.2.2.6
FUZZY = "fuzzy"                   # C.2.2.2.1 with fuzzy semantic of PN (PS3.18 8.3.4.1)


@dataclass(frozen=True)
class MatchKey:
    keyword: str             # DICOM keyword, or "Sequence.Item" for a sequence matching key
    tag: str                 # 8 hex digits; dotted for sequence keys
    vr: str
    level: str               # study (patient attributes count as study level), series or instance
    kinds: frozenset

    def matchable_at(self, level: str) -> bool:
        """Keys of the searched level and of the levels above it (relational queries, PS3.18 10.6.1.2)."""
        return _DEPTH[self.level] <= _DEPTH[level]


def _key(keyword: str, tag: str, vr: str, level: str, *kinds: str) -> MatchKey:
    return MatchKey(keyword, tag, vr, level, frozenset((UNIVERSAL,) + kinds))


_TEXT = (SINGLE, WILDCARD)
_CODE = (SINGLE, WILDCARD, LIST)
_PN = (SINGLE, WILDCARD, FUZZY)
_UID = (SINGLE, LIST)
_DATE = (SINGLE, RANGE)

MATCH_KEYS: dict[str, MatchKey] = {k.keyword: k for k in (
    _key("PatientName", "00100010", "PN", STUDY, *_PN),
    _key("PatientID", "00100020", "LO", STUDY, *_TEXT),
    _key("PatientBirthDate", "00100030", "DA", STUDY, *_DATE),
    _key("StudyInstanceUID", "0020000D", "UI", STUDY, *_UID),
    _key("StudyDate", "00080020", "DA", STUDY, *_DATE),
    _key("StudyTime", "00080030", "TM", STUDY, *_DATE),
    _key("AccessionNumber", "00080050", "SH", STUDY, *_TEXT),
    _key("StudyID", "00200010", "SH", STUDY, *_TEXT),
    _key("ReferringPhysicianName", "00080090", "PN", STUDY, *_PN),
    _key("ModalitiesInStudy", "00080061", "CS", STUDY, SINGLE, LIST),
    _key("SeriesInstanceUID", "0020000E", "UI", SERIES, *_UID),
    _key("Modality", "00080060", "CS", SERIES, *_CODE),
    _key("SeriesNumber", "00200011", "IS", SERIES, SINGLE, LIST),
    _key("PerformedProcedureStepStartDate", "00400244", "DA", SERIES, *_DATE),
    _key("PerformedProcedureStepStartTime", "00400245", "TM", SERIES, *_DATE),
    _key("RequestAttributesSequence.ScheduledProcedureStepID", "00400275.00400009", "SH", SERIES,
         SEQUENCE, *_TEXT),
    _key("RequestAttributesSequence.RequestedProcedureID", "00400275.00401001", "SH", SERIES,
         SEQUENCE, *_TEXT),
    _key("SOPInstanceUID", "00080018", "UI", INSTANCE, *_UID),
    _key("SOPClassUID", "00080016", "UI", INSTANCE, *_UID),
    _key("InstanceNumber", "00200013", "IS", INSTANCE, SINGLE, LIST),
)}
MATCH_KEYS_BY_TAG = {k.tag: k for k in MATCH_KEYS.values()}

# Combined date-time range matching (PS3.4 C.2.2.2.5.1) of these pairs uses one combined index column.
DATETIME_PAIRS = {("StudyDate", "StudyTime"): "StudyDateTime"}

# Query parameters of PS3.18 8.3.4 that are not attributes.
LIMIT, OFFSET, FUZZY_MATCHING, INCLUDE_FIELD, TIMEZONE = (
    "limit", "offset", "fuzzymatching", "includefield", "TimezoneOffsetFromUTC")
CONTROL_PARAMETERS = (LIMIT, OFFSET, FUZZY_MATCHING, INCLUDE_FIELD)
INCLUDE_ALL = "all"

# Default return attributes, by keyword (PS3.18 Tables 10.6.3-3/-4/-5). StudyDescription is not in
# Table 10.6.3-3 but every study list shows it; the index has it, so it costs nothing.
STUDY_DEFAULTS = (
    "SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability",
    "ModalitiesInStudy", "ReferringPhysicianName", "TimezoneOffsetFromUTC", "RetrieveURL", "PatientName",
    "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID", "StudyDescription",
    "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
)
SERIES_DEFAULTS = (
    "SpecificCharacterSet", "Modality", "TimezoneOffsetFromUTC", "SeriesDescription", "RetrieveURL",
    "SeriesInstanceUID", "SeriesNumber", "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "RequestAttributesSequence",
    # not in Table 10.6.3-4, but the parent UID of every result lets a client of a series search that
    # spans studies (PS3.18 10.6.3.3.2) address what it found
    "StudyInstanceUID",
)
INSTANCE_DEFAULTS = (
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "InstanceAvailability", "TimezoneOffsetFromUTC",
    "RetrieveURL", "InstanceNumber", "Rows", "Columns", "BitsAllocated", "NumberOfFrames",
    "StudyInstanceUID", "SeriesInstanceUID",
)
DEFAULTS = {STUDY: STUDY_DEFAULTS, SERIES: SERIES_DEFAULTS, INSTANCE: INSTANCE_DEFAULTS}


def default_return_keywords(level: str, study_in_path: bool, series_in_path: bool) -> list[str]:
    """Default attributes of a search at ``level``.

    PS3.18 10.6.3.3: a search for all series also returns the study attributes of Table 10.6.3-3; a
    search for the instances of a study also returns the series attributes, one for all instances both.
    """
    keywords = list(DEFAULTS[level])
    if level == SERIES and not study_in_path:
        keywords += STUDY_DEFAULTS
    if level == INSTANCE and not series_in_path:
        # RequestAttributesSequence only on request (includefield): it is not in the index, and reading
        # every instance's stored metadata for it would make every instance search slower.
        keywords += [k for k in SERIES_DEFAULTS if k != "RequestAttributesSequence"]
        if not study_in_path:
            keywords += STUDY_DEFAULTS
    return list(dict.fromkeys(keywords))


# Attributes computed by the server rather than stored (never read from an instance's metadata).
INSTANCE_AVAILABILITY = "ONLINE"
RESPONSE_CHARACTER_SET = "ISO_IR 192"    # DICOM JSON and XML answers are UTF-8 (PS3.18 F.2, PS3.19)

# Attributes of the study level (Patient, Clinical Trial Subject, General Study, Patient Study and
# Clinical Trial Study modules, PS3.3 C.7.1.1, C.7.1.3, C.7.2.1-3), by keyword: what includefield=all
# returns of a study from its representative instance.
STUDY_LEVEL_ATTRIBUTES = frozenset((
    "PatientName", "PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "TypeOfPatientID",
    "PatientBirthDate", "PatientBirthTime", "PatientSex", "QualityControlSubject", "OtherPatientIDsSequence",
    "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "EthnicGroup", "PatientComments",
    "PatientSpeciesDescription", "PatientSpeciesCodeSequence", "PatientBreedDescription",
    "PatientBreedCodeSequence", "BreedRegistrationSequence", "ResponsiblePerson", "ResponsiblePersonRole",
    "ResponsibleOrganization", "PatientIdentityRemoved", "DeidentificationMethod",
    "DeidentificationMethodCodeSequence", "ReferencedPatientSequence", "StrainDescription",
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
    "ClinicalTrialSiteName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName",
    "ConsultingPhysicianIdentificationSequence", "StudyID", "AccessionNumber",
    "IssuerOfAccessionNumberSequence", "StudyDescription", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "RequestingServiceCodeSequence",
    "ReferencedStudySequence",
    "ProcedureCodeSequence", "ReasonForPerformedProcedureCodeSequence", "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence", "PatientAge", "PatientSize", "PatientWeight", "PatientSizeCodeSequence",
    "MedicalAlerts", "Allergies", "SmokingStatus", "PregnancyStatus", "LastMenstrualDate",
    "PatientState", "Occupation", "AdditionalPatientHistory", "AdmissionID", "IssuerOfAdmissionIDSequence",
    "ServiceEpisodeID", "ServiceEpisodeDescription", "PatientSexNeutered", "ClinicalTrialTimePointID",
    "ClinicalTrialTimePointDescription", "ClinicalTrialCoordinatingCenterName", "TimezoneOffsetFromUTC",
))

# Attributes of the series level (General Series, Clinical Trial Series, Frame of Reference, General
# Equipment and the common modality-specific series modules, PS3.3 C.7.3, C.7.4, C.7.5), by keyword.
SERIES_LEVEL_ATTRIBUTES = frozenset((
    "Modality", "SeriesInstanceUID", "SeriesNumber", "Laterality", "SeriesDate", "SeriesTime",
    "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence", "ProtocolName",
    "SeriesDescription", "SeriesDescriptionCodeSequence", "OperatorsName", "OperatorIdentificationSequence",
    "ReferencedPerformedProcedureStepSequence", "RelatedSeriesSequence", "BodyPartExamined",
    "PatientPosition", "SmallestPixelValueInSeries", "LargestPixelValueInSeries", "RequestAttributesSequence",
    "PerformedProcedureStepID", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime", "PerformedProcedureStepDescription",
    "PerformedProtocolCodeSequence", "CommentsOnThePerformedProcedureStep", "AnatomicalOrientationType",
    "ClinicalTrialCoordinatingCenterName", "ClinicalTrialSeriesID", "ClinicalTrialSeriesDescription",
    "FrameOfReferenceUID", "PositionReferenceIndicator", "Manufacturer", "InstitutionName",
    "InstitutionAddress", "StationName", "InstitutionalDepartmentName", "ManufacturerModelName",
    "DeviceSerialNumber", "SoftwareVersions", "SpatialResolution", "DateOfLastCalibration",
    "TimeOfLastCalibration", "PixelPaddingValue", "TimezoneOffsetFromUTC",
))
