"""A readable rendering of a Structured Report's content tree (PS3.3 C.17.3) as text/plain or text/html.

For WADO-URI ``contentType=text/plain`` / ``text/html``: a header (title, patient, study, completion and
verification) and one line per content item, indented by depth, as ``RELATIONSHIP  Concept name: value``.
Values: TEXT, CODE (meaning), NUM (value and units), PNAME, DATE, TIME, DATETIME, UIDREF, references to
other objects (IMAGE, COMPOSITE, WAVEFORM: the referenced SOP Instance UID), coordinates (SCOORD, SCOORD3D,
TCOORD: graphic type and data), and items referenced by number (by-reference relationships).
"""
from __future__ import annotations

import html

from pydicom.dataset import Dataset

SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_DEPTH_LIMIT = 64


def is_structured_report(sop_class: str | None, dataset_hint: dict | None = None) -> bool:
    """SR Storage SOP Classes (…88.x), incl. Key Object Selection; or any object whose root is a
    CONTAINER."""
    if sop_class and str(sop_class).startswith(SR_CLASS_PREFIX):
        return True
    if dataset_hint:
        value = dataset_hint.get("0040A040", {}).get("Value", [None])[0]
        return value == "CONTAINER" and "0040A730" in dataset_hint
    return False


def _meaning(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> str:
    sequence = item.get(keyword, None)
    if not sequence:
        return ""
    code = sequence[0]
    return str(code.get("CodeMeaning", "") or code.get("CodeValue", ""))


def _value(item: Dataset) -> str:
    kind = str(item.get("ValueType", ""))
    if kind == "TEXT":
        return str(item.get("TextValue", ""))
    if kind == "CODE":
        return _meaning(item, "ConceptCodeSequence")
    if kind == "NUM":
        measured = item.get("MeasuredValueSequence", None)
        if not measured:
            return ""
        value = measured[0]
        units = value.get("MeasurementUnitsCodeSequence", None)
        unit = str(units[0].get("CodeValue", "")) if units else ""
        return f"{value.get('NumericValue', '')} {unit}".strip()
    if kind == "PNAME":
        return str(item.get("PersonName", ""))
    if kind in ("DATE", "TIME", "DATETIME", "UIDREF"):
        keyword = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "UIDREF": "UID"}[kind]
        return str(item.get(keyword, ""))
    if kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        references = item.get("ReferencedSOPSequence", None)
        return f"object {references[0].get('ReferencedSOPInstanceUID', '')}" if references else ""
    if kind in ("SCOORD", "SCOORD3D"):
        data = item.get("GraphicData", None) or []
        return f"{item.get('GraphicType', '')} {list(data)}".strip()
    if kind == "TCOORD":
        return str(item.get("TemporalRangeType", ""))
    if kind == "CONTAINER":
        return ""
    return ""


def content_lines(ds: Dataset) -> list[tuple[int, str, str, str]]:
    """(depth, relationship, concept name, value) for every content item, in document order."""
    lines: list[tuple[int, str, str, str]] = []

    def walk(items, depth: int) -> None:
        if depth > _DEPTH_LIMIT:
            return
        for item in items or []:
            relationship = str(item.get("RelationshipType", ""))
            if "ReferencedContentItemIdentifier" in item and "ValueType" not in item:
                target = ".".join(str(n) for n in item.ReferencedContentItemIdentifier)
                lines.append((depth, relationship, "(see item)", target))
                continue
            lines.append((depth, relationship, _meaning(item), _value(item)))
            walk(item.get("ContentSequence", None), depth + 1)

    walk(ds.get("ContentSequence", None), 1)
    return lines


def _header(ds: Dataset) -> list[tuple[str, str]]:
    patient_id = str(ds.get("PatientID", "") or "")
    fields = [("Patient", f"{ds.get('PatientName', '')}" + (f" ({patient_id})" if patient_id else "")),
              ("Study", f"{ds.get('StudyDate', '')} {ds.get('StudyDescription', '')}".strip()),
              ("Completion", str(ds.get("CompletionFlag", ""))),
              ("Verification", str(ds.get("VerificationFlag", "")))]
    return [(name, value) for name, value in fields if value]


def title(ds: Dataset) -> str:
    return _meaning(ds) or "Structured Report"


def to_text(ds: Dataset) -> str:
    out = [title(ds), "=" * len(title(ds))]
    out += [f"{name}: {value}" for name, value in _header(ds)]
    out.append("")
    for depth, relationship, name, value in content_lines(ds):
        label = f"{name}: {value}" if value else name
        out.append("  " * (depth - 1) + (f"[{relationship}] " if relationship else "") + label)
    return "\n".join(out) + "\n"


def to_html(ds: Dataset, charset: str = "utf-8") -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", "<html><head>", f'<meta charset="{esc(charset)}">',
           f"<title>{esc(title(ds))}</title>", "</head><body>", f"<h1>{esc(title(ds))}</h1>", "<dl>"]
    for name, value in _header(ds):
        out.append(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>")
    out.append("</dl>")
    depth_now = 0
    for depth, relationship, name, value in content_lines(ds):
        while depth_now < depth:
            out.append("<ul>")
            depth_now += 1
        while depth_now > depth:
            out.append("</ul>")
            depth_now -= 1
        rel = f'<span class="rel">{esc(relationship)}</span> ' if relationship else ""
        body = f"<b>{esc(name)}</b>" + (f": {esc(value)}" if value else "")
        out.append(f"<li>{rel}{body}</li>")
    out += ["</ul>"] * depth_now
    out.append("</body></html>")
    return "\n".join(out) + "\n"
