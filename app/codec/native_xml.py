"""PS3.19 Native DICOM Model (application/dicom+xml) to and from the DICOM JSON model (PS3.18 F.2).

Both directions work on DICOM JSON dictionaries, so every service produces JSON once and XML from it.
"""
from __future__ import annotations

from lxml import etree
from pydicom.datadict import keyword_for_tag

from app.errors import BadRequest

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def _keyword(tag: str) -> str | None:
    try:
        return keyword_for_tag(int(tag, 16)) or None
    except ValueError:
        return None


def _add_attributes(parent, dataset: dict) -> None:
    for tag in sorted(dataset):
        element = dataset[tag]
        vr = element.get("vr", "UN")
        node = etree.SubElement(parent, "DicomAttribute", tag=tag.upper(), vr=vr)
        keyword = _keyword(tag)
        if keyword:
            node.set("keyword", keyword)
        if "BulkDataURI" in element:
            etree.SubElement(node, "BulkData", uri=element["BulkDataURI"])
            continue
        if "InlineBinary" in element:
            etree.SubElement(node, "InlineBinary").text = element["InlineBinary"]
            continue
        for number, value in enumerate(element.get("Value", []), start=1):
            if vr == "SQ":
                item = etree.SubElement(node, "Item", number=str(number))
                _add_attributes(item, value or {})
            elif vr == "PN":
                person = etree.SubElement(node, "PersonName", number=str(number))
                for group in _PN_GROUPS:
                    text = (value or {}).get(group)
                    if text is None:
                        continue
                    group_node = etree.SubElement(person, group)
                    for name, component in zip(_PN_COMPONENTS, text.split("^")):
                        if component:
                            etree.SubElement(group_node, name).text = component
            else:
                value_node = etree.SubElement(node, "Value", number=str(number))
                if value is not None:
                    value_node.text = str(value)


def to_xml(dataset: dict) -> bytes:
    """One NativeDicomModel document for one DICOM JSON dataset."""
    root = etree.Element("NativeDicomModel", nsmap={None: NAMESPACE})
    root.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
    _add_attributes(root, dataset)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


_NUMERIC_INT = {"IS", "SL", "SS", "SV", "UL", "US", "UV", "AT"}
_NUMERIC_FLOAT = {"DS", "FL", "FD"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _read_attributes(parent) -> dict:
    dataset: dict = {}
    for node in parent:
        if not isinstance(node.tag, str) or _local(node.tag) != "DicomAttribute":
            continue
        tag = (node.get("tag") or "").upper()
        vr = node.get("vr")
        if len(tag) != 8 or not vr:
            raise BadRequest("dicom+xml: every DicomAttribute needs an 8-digit tag and a vr attribute")
        try:
            int(tag, 16)
        except ValueError:
            raise BadRequest(f"dicom+xml: tag {tag!r} is not hexadecimal") from None
        element: dict = {"vr": vr}
        values = []
        for child in node:
            if not isinstance(child.tag, str):
                continue
            name = _local(child.tag)
            if name == "BulkData":
                element["BulkDataURI"] = child.get("uri") or child.get("uuid") or ""
            elif name == "InlineBinary":
                element["InlineBinary"] = (child.text or "").strip()
            elif name == "Item":
                values.append(_read_attributes(child))
            elif name == "PersonName":
                person = {}
                for group in child:
                    if not isinstance(group.tag, str) or _local(group.tag) not in _PN_GROUPS:
                        continue
                    parts = {_local(c.tag): (c.text or "") for c in group if isinstance(c.tag, str)}
                    components = [parts.get(n, "") for n in _PN_COMPONENTS]
                    while components and not components[-1]:
                        components.pop()
                    person[_local(group.tag)] = "^".join(components)
                values.append(person)
            elif name == "Value":
                text = child.text
                if text is None:
                    values.append(None)
                elif vr in _NUMERIC_INT and vr != "AT":
                    values.append(int(text))
                elif vr in _NUMERIC_FLOAT:
                    values.append(float(text) if vr != "DS" else text)
                else:
                    values.append(text)
        if values:
            element["Value"] = values
        dataset[tag] = element
    return dataset


def from_xml(data: bytes) -> dict:
    """Parse one NativeDicomModel document into a DICOM JSON dataset; BadRequest when it is not one."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"dicom+xml part is not well-formed XML: {exc}") from exc
    if _local(root.tag) != "NativeDicomModel":
        raise BadRequest(f"dicom+xml part has root <{_local(root.tag)}>, expected <NativeDicomModel>")
    try:
        return _read_attributes(root)
    except ValueError as exc:
        raise BadRequest(f"dicom+xml part has a malformed value: {exc}") from exc
