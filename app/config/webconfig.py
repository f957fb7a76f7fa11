"""Read ``<configuration><appSettings>`` from an IIS web.config the way .NET does.

``<add key value>`` adds or replaces, ``<remove key>`` drops one key, ``<clear/>`` drops all keys seen so
far. DTDs and external entities are refused: a web.config is data, never a fetch instruction.
"""
from __future__ import annotations

from pathlib import Path

from lxml import etree

from app.errors import ConfigurationError


def read_app_settings(path: str | Path) -> dict[str, str]:
    path = Path(path)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             remove_comments=True, huge_tree=False)
    try:
        tree = etree.parse(str(path), parser)
    except OSError as exc:
        raise ConfigurationError([f"cannot read {path}: {exc}"]) from exc
    except etree.XMLSyntaxError as exc:
        raise ConfigurationError([f"{path} is not well-formed XML: {exc}"]) from exc
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ConfigurationError([f"{path} declares a DTD; DTDs and entities are not allowed in web.config"])
    root = tree.getroot()
    # Visual Studio 2005 wrote <configuration xmlns="http://schemas.microsoft.com/.NetConfiguration/v2.0">;
    # .NET ignores that namespace, so names are compared without it.
    if etree.QName(root).localname != "configuration":
        raise ConfigurationError([f"{path}: root element is <{etree.QName(root).localname}>, "
                                  "expected <configuration>"])
    settings: dict[str, str] = {}
    for section in root:
        if not isinstance(section.tag, str) or etree.QName(section).localname != "appSettings":
            continue
        for element in section:
            if not isinstance(element.tag, str):
                continue
            name = etree.QName(element).localname
            if name == "add":
                key = element.get("key")
                if key is None:
                    raise ConfigurationError([f"{path} line {element.sourceline}: <add> without key"])
                settings[key] = element.get("value", "")
            elif name == "remove":
                settings.pop(element.get("key", ""), None)
            elif name == "clear":
                settings.clear()
    return settings
