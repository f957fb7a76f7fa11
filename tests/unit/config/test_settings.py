"""web.config <appSettings> reading (app.config.webconfig) and typed settings (app.config.settings).

Every test passes ``environ`` explicitly so the host environment never leaks in.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from lxml import etree

from app.config.settings import SETTINGS, environment_names, load_settings
from app.config.webconfig import read_app_settings
from app.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[3]


def write_config(folder: Path, app_settings: str = "", *, name: str = "web.config", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<configuration>\n"
        f"  <appSettings>\n{app_settings}\n  </appSettings>\n"
        f"{extra}"
        "</configuration>\n",
        encoding="utf-8",
    )
    return path


def add(key: str, value: str) -> str:
    return f'    <add key="{key}" value="{value}" />'


# --------------------------------------------------------------------------------------------------------
# read_app_settings: <add>, <remove>, <clear>
# --------------------------------------------------------------------------------------------------------

def test_add_entries_are_read_in_document_order(tmp_path):
    path = write_config(tmp_path, "\n".join([add("b", "2"), add("a", "1"), add("c", "3")]))
    assert list(read_app_settings(path).items()) == [("b", "2"), ("a", "1"), ("c", "3")]


def test_add_of_an_existing_key_replaces_its_value(tmp_path):
    path = write_config(tmp_path, "\n".join([add("a", "first"), add("b", "x"), add("a", "second")]))
    settings = read_app_settings(path)
    assert settings == {"a": "second", "b": "x"}


def test_remove_drops_only_the_named_key(tmp_path):
    path = write_config(tmp_path, "\n".join([add("a", "1"), add("b", "2"), '<remove key="a" />', add("c", "3")]))
    assert list(read_app_settings(path).items()) == [("b", "2"), ("c", "3")]


def test_remove_then_add_puts_the_key_back_at_the_end(tmp_path):
    path = write_config(tmp_path, "\n".join([add("a", "1"), add("b", "2"), '<remove key="a" />', add("a", "9")]))
    assert list(read_app_settings(path).items()) == [("b", "2"), ("a", "9")]


def test_remove_of_an_unknown_key_or_without_key_is_harmless(tmp_path):
    path = write_config(tmp_path, "\n".join([add("a", "1"), '<remove key="nope" />', "<remove />"]))
    assert read_app_settings(path) == {"a": "1"}


def test_clear_drops_every_key_seen_so_far_but_not_later_ones(tmp_path):
    path = write_config(tmp_path, "\n".join([add("a", "1"), add("b", "2"), "<clear />", add("c", "3"),
                                             add("a", "4")]))
    assert list(read_app_settings(path).items()) == [("c", "3"), ("a", "4")]


def test_clear_at_the_end_leaves_nothing(tmp_path):
    path = write_config(tmp_path, "\n".join([add("a", "1"), "<clear/>"]))
    assert read_app_settings(path) == {}


def test_add_without_value_means_empty_string(tmp_path):
    path = write_config(tmp_path, '<add key="a" />')
    assert read_app_settings(path) == {"a": ""}


def test_add_without_key_is_a_configuration_error_with_file_and_line(tmp_path):
    path = write_config(tmp_path, add("a", "1") + '\n<add value="orphan" />')
    with pytest.raises(ConfigurationError) as info:
        read_app_settings(path)
    (problem,) = info.value.problems
    assert str(path) in problem
    assert "without key" in problem
    assert "line 5" in problem     # xml declaration, <configuration>, <appSettings>, first add, then this


def test_comments_and_processing_instructions_are_ignored(tmp_path):
    body = "\n".join(["<!-- <add key='hidden' value='x' /> -->", add("a", "1"), "<?pi something?>",
                      add("b", "2")])
    path = write_config(tmp_path, body)
    assert read_app_settings(path) == {"a": "1", "b": "2"}


def test_xml_character_references_and_predefined_entities_are_decoded(tmp_path):
    path = write_config(tmp_path, add("conn", "Server=a;Pwd=p&amp;q&lt;&#x41;&quot;"))
    assert read_app_settings(path) == {"conn": 'Server=a;Pwd=p&q<A"'}


def test_only_app_settings_are_read_not_other_add_elements(tmp_path):
    extra = ('  <system.webServer><handlers><add name="h" key="handler-key" value="v" /></handlers>'
             "</system.webServer>\n")
    path = write_config(tmp_path, add("a", "1"), extra=extra)
    assert read_app_settings(path) == {"a": "1"}


def test_config_without_app_settings_is_empty(tmp_path):
    path = tmp_path / "web.config"
    path.write_text("<configuration><system.webServer/></configuration>", encoding="utf-8")
    assert read_app_settings(path) == {}


def test_wrong_root_element_is_refused(tmp_path):
    path = tmp_path / "web.config"
    path.write_text('<settings><appSettings><add key="a" value="1"/></appSettings></settings>')
    with pytest.raises(ConfigurationError) as info:
        read_app_settings(path)
    assert "<settings>" in info.value.problems[0]
    assert str(path) in info.value.problems[0]


def test_missing_file_is_a_configuration_error_naming_the_file(tmp_path):
    path = tmp_path / "absent" / "web.config"
    with pytest.raises(ConfigurationError) as info:
        read_app_settings(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", [
    "<configuration><appSettings><add key='a' value='1'></appSettings></configuration>",   # unclosed
    "<configuration><appSettings><add key='a' value='1'/></appSettings>",                  # truncated
    "",                                                                                    # empty file
    "not xml at all",
    "<configuration><appSettings><add key='a' value='1' key='b'/></appSettings></configuration>",
])
def test_malformed_xml_is_a_configuration_error_naming_the_file(tmp_path, text):
    path = tmp_path / "web.config"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        read_app_settings(path)
    assert len(info.value.problems) == 1
    assert str(path) in info.value.problems[0]
    # load_settings reports the same problem rather than some other failure.
    with pytest.raises(ConfigurationError) as info2:
        load_settings(path, environ={})
    assert str(path.resolve()) in str(info2.value)


# --------------------------------------------------------------------------------------------------------
# DTDs and external entities (XXE) are refused, and the referenced file is never opened.
# --------------------------------------------------------------------------------------------------------

class FifoProbe:
    """A named pipe that records whether anyone opened it for reading.

    A writer thread blocks in open(O_WRONLY) until a reader opens the pipe. If the XML parser ever opens the
    file, the writer wakes up, sets ``opened`` and feeds it some XML; the parser reads to EOF, so ``opened``
    is set by the time parsing returns. Otherwise ``close()`` opens the read end itself to release the thread.
    """

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        self.opened.set()
        try:
            os.write(fd, b"<secret>root:x:0:0</secret>")
        finally:
            os.close(fd)

    def close(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            self._thread.join(5)
        finally:
            os.close(fd)
        assert not self._thread.is_alive()


@pytest.fixture
def fifo_probe(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs named pipes")
    probe = FifoProbe(tmp_path / "secret-file")
    yield probe
    probe.close()


def test_fifo_probe_detects_a_parser_that_does_read_entities(tmp_path, fifo_probe):
    # Control: a parser configured to resolve entities does open the file, so the probe is meaningful.
    path = tmp_path / "web.config"
    path.write_text(f'<!DOCTYPE configuration [<!ENTITY e SYSTEM "file://{fifo_probe.path}">]>'
                    "<configuration><appSettings>&e;</appSettings></configuration>")
    unsafe = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=True)
    etree.parse(str(path), unsafe)
    assert fifo_probe.opened.is_set()


@pytest.mark.parametrize("template", [
    # general external entity used in content
    '<!DOCTYPE configuration [<!ENTITY e SYSTEM "file://{secret}">]>'
    '<configuration><appSettings><add key="a" value="1"/>&e;</appSettings></configuration>',
    # the example from the brief: any root name, plain file URL
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]><configuration><appSettings>&e;</appSettings>'
    "</configuration>",
    # relative system identifier, no scheme
    '<!DOCTYPE configuration [<!ENTITY e SYSTEM "{secret}">]><configuration>&e;</configuration>',
    # external parameter entity expanded inside the internal subset
    '<!DOCTYPE configuration [<!ENTITY % p SYSTEM "file://{secret}"> %p;]><configuration/>',
    # external DTD subset
    '<!DOCTYPE configuration SYSTEM "file://{secret}"><configuration/>',
    # external entity referenced from an attribute value (not well-formed XML, still refused)
    '<!DOCTYPE configuration [<!ENTITY e SYSTEM "file://{secret}">]>'
    '<configuration><appSettings><add key="a" value="&e;"/></appSettings></configuration>',
])
def test_dtd_with_external_entity_is_refused_and_the_file_is_never_read(tmp_path, fifo_probe, template):
    path = tmp_path / "web.config"
    path.write_text('<?xml version="1.0"?>\n' + template.format(secret=fifo_probe.path), encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        read_app_settings(path)
    assert not fifo_probe.opened.is_set(), "the parser opened the file named by the entity"
    assert str(path) in str(info.value)
    assert "root:x" not in str(info.value)


def test_xxe_is_refused_by_load_settings_too(tmp_path, fifo_probe):
    path = tmp_path / "web.config"
    path.write_text(f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{fifo_probe.path}">]>'
                    '<configuration><appSettings><add key="app:logLevel" value="DEBUG"/>&e;</appSettings>'
                    "</configuration>")
    with pytest.raises(ConfigurationError) as info:
        load_settings(path, environ={})
    assert "DTD" in str(info.value)
    assert not fifo_probe.opened.is_set()


def test_etc_passwd_entity_is_refused(tmp_path):
    path = tmp_path / "web.config"
    path.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                    '<configuration><appSettings><add key="a" value="1"/>&e;</appSettings></configuration>')
    with pytest.raises(ConfigurationError) as info:
        read_app_settings(path)
    assert "DTD" in str(info.value)
    assert "root:" not in str(info.value)


def test_internal_entities_billion_laughs_are_refused(tmp_path):
    lol = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10}">' for i in range(1, 10))
    path = tmp_path / "web.config"
    path.write_text(f'<!DOCTYPE configuration [<!ENTITY l0 "lol">{lol}]>'
                    "<configuration><appSettings><add key='a' value='1'/>&l9;</appSettings></configuration>")
    with pytest.raises(ConfigurationError) as info:
        read_app_settings(path)
    # libxml2 may stop it as an amplification attack before the DTD check; refused either way, quickly.
    assert str(path) in str(info.value)
    assert "lollol" not in str(info.value)


def test_bare_doctype_without_entities_is_refused(tmp_path):
    path = tmp_path / "web.config"
    path.write_text("<!DOCTYPE configuration><configuration><appSettings/></configuration>")
    with pytest.raises(ConfigurationError):
        read_app_settings(path)


# --------------------------------------------------------------------------------------------------------
# load_settings: defaults
# --------------------------------------------------------------------------------------------------------

EXPECTED_DEFAULTS = {
    "storage_connection": "|DataDirectory|/Storage",
    "storage_container": "dicom",
    "database_url": "sqlite:///|DataDirectory|/pacs.sqlite3",
    "wado_rs_url": "",
    "wado_uri_url": "",
    "validate_duplicate_instance": True,
    "enable_anonymizer": False,
    "anonymizer_options": "BasicProfile,RetainUIDs,RetainLongFullDates,RetainPatientChars",
    "anonymizer_uid_secret": "",
    "temp_directory": "|DataDirectory|/tmp",
    "max_request_bytes": 0,
    "max_part_header_bytes": 65536,
    "qido_maximum_results": 1000,
    "log_level": "INFO",
}


def test_every_setting_has_a_documented_expected_default():
    assert {s.name for s in SETTINGS} == set(EXPECTED_DEFAULTS)
    assert len({s.key for s in SETTINGS}) == len(SETTINGS)
    assert all(s.doc.strip() for s in SETTINGS)


def test_defaults_apply_when_web_config_has_no_keys(tmp_path):
    settings = load_settings(write_config(tmp_path, ""), environ={})
    assert settings.as_dict() == EXPECTED_DEFAULTS
    assert settings.raw["qido:maximumResultsLimit"] == "1000"


def test_defaults_apply_for_absent_keys_while_present_keys_are_used(tmp_path):
    path = write_config(tmp_path, "\n".join([add("qido:maximumResultsLimit", "250"),
                                             add("app:enableAnonymizer", "true"),
                                             add("unrelated:key", "whatever")]))
    settings = load_settings(path, environ={})
    assert settings.qido_maximum_results == 250
    assert settings.enable_anonymizer is True
    expected = dict(EXPECTED_DEFAULTS, qido_maximum_results=250, enable_anonymizer=True)
    assert settings.as_dict() == expected
    assert "unrelated:key" not in settings.raw


def test_no_config_file_gives_defaults_and_data_directory_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={})
    assert settings.as_dict() == EXPECTED_DEFAULTS
    assert settings.config_path is None
    assert settings.data_directory == tmp_path / "App_Data"
    assert settings.resolve_path("Blobs") == tmp_path / "Blobs"


def test_a_removed_key_falls_back_to_the_default(tmp_path):
    path = write_config(tmp_path, "\n".join([add("qido:maximumResultsLimit", "5"),
                                             '<remove key="qido:maximumResultsLimit" />']))
    assert load_settings(path, environ={}).qido_maximum_results == 1000


def test_a_cleared_key_falls_back_to_the_default(tmp_path):
    path = write_config(tmp_path, "\n".join([add("app:logLevel", "DEBUG"), "<clear/>",
                                             add("app:enableAnonymizer", "yes")]))
    settings = load_settings(path, environ={})
    assert settings.log_level == "INFO"
    assert settings.enable_anonymizer is True


def test_the_repository_web_config_is_valid(tmp_path):
    settings = load_settings(REPO / "web.config", environ={})
    assert settings.config_path == (REPO / "web.config").resolve()
    assert settings.data_directory == REPO.resolve() / "App_Data"
    assert isinstance(settings.qido_maximum_results, int)
    assert isinstance(settings.validate_duplicate_instance, bool)


@pytest.mark.parametrize("raw, expected", [
    ("true", True), ("TRUE", True), (" True ", True), ("1", True), ("yes", True), ("On", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("off", False), ("", False),
])
def test_boolean_spellings(tmp_path, raw, expected):
    path = write_config(tmp_path, add("app:storecommand.validateDuplicateInstance", raw))
    assert load_settings(path, environ={}).validate_duplicate_instance is expected


def test_integers_allow_surrounding_whitespace(tmp_path):
    path = write_config(tmp_path, add("stow:maxRequestBytes", " 1048576 "))
    assert load_settings(path, environ={}).max_request_bytes == 1048576


def test_strings_are_stripped(tmp_path):
    path = write_config(tmp_path, add("app:WadoRsUrl", "  https://pacs.example/api  "))
    assert load_settings(path, environ={}).wado_rs_url == "https://pacs.example/api"


def test_unknown_attribute_raises_attribute_error(tmp_path):
    settings = load_settings(write_config(tmp_path, ""), environ={})
    with pytest.raises(AttributeError):
        settings.not_a_setting  # noqa: B018
    assert not hasattr(settings, "not_a_setting")


# --------------------------------------------------------------------------------------------------------
# Environment (Azure App Service names) and explicit overrides
# --------------------------------------------------------------------------------------------------------

def test_environment_names_follow_azure_conventions():
    assert environment_names("app:storecommand.validateDuplicateInstance") == [
        "app:storecommand.validateDuplicateInstance",
        "app__storecommand_validateDuplicateInstance",
        "APPSETTING_app:storecommand.validateDuplicateInstance",
        "APPSETTING_app__storecommand_validateDuplicateInstance",
    ]
    assert environment_names("app:PacsStorageConnection") == [
        "app:PacsStorageConnection", "app__PacsStorageConnection",
        "APPSETTING_app:PacsStorageConnection", "APPSETTING_app__PacsStorageConnection",
    ]


def test_environment_names_have_no_duplicates_for_plain_keys():
    assert environment_names("plain") == ["plain", "APPSETTING_plain"]


@pytest.mark.parametrize("variable", [
    "app__PacsStorageConnection",
    "APPSETTING_app__PacsStorageConnection",
    "app:PacsStorageConnection",
    "APPSETTING_app:PacsStorageConnection",
])
def test_environment_overrides_web_config_for_every_azure_name(tmp_path, variable):
    path = write_config(tmp_path, add("app:PacsStorageConnection", "from-web-config"))
    settings = load_settings(path, environ={variable: "/mnt/share/dicom"})
    assert settings.storage_connection == "/mnt/share/dicom"
    assert settings.raw["app:PacsStorageConnection"] == "/mnt/share/dicom"


@pytest.mark.parametrize("variable", [
    "app__storecommand_validateDuplicateInstance",
    "APPSETTING_app__storecommand_validateDuplicateInstance",
    "app:storecommand.validateDuplicateInstance",
])
def test_environment_overrides_dotted_keys(tmp_path, variable):
    path = write_config(tmp_path, add("app:storecommand.validateDuplicateInstance", "true"))
    assert load_settings(path, environ={variable: "false"}).validate_duplicate_instance is False


def test_environment_overrides_a_default_when_web_config_lacks_the_key(tmp_path):
    path = write_config(tmp_path, "")
    settings = load_settings(path, environ={"qido__maximumResultsLimit": "42"})
    assert settings.qido_maximum_results == 42


def test_an_empty_environment_value_still_overrides(tmp_path):
    path = write_config(tmp_path, add("app:WadoRsUrl", "https://from-config/api"))
    assert load_settings(path, environ={"app__WadoRsUrl": ""}).wado_rs_url == ""


def test_unrelated_and_differently_cased_environment_variables_are_ignored(tmp_path):
    path = write_config(tmp_path, add("qido:maximumResultsLimit", "7"))
    environ = {"QIDO__MAXIMUMRESULTSLIMIT": "99", "qido_maximumResultsLimit": "98", "maximumResultsLimit": "97"}
    assert load_settings(path, environ=environ).qido_maximum_results == 7


def test_explicit_overrides_beat_environment_and_web_config(tmp_path):
    path = write_config(tmp_path, "\n".join([add("qido:maximumResultsLimit", "10"),
                                             add("app:logLevel", "WARNING")]))
    environ = {"qido__maximumResultsLimit": "20", "app__logLevel": "ERROR"}
    settings = load_settings(path, environ=environ,
                             overrides={"qido:maximumResultsLimit": "30", "log_level": "DEBUG"})
    assert settings.qido_maximum_results == 30
    assert settings.log_level == "DEBUG"
    assert settings.raw["qido:maximumResultsLimit"] == "30"


def test_non_string_overrides_are_used_as_given(tmp_path):
    path = write_config(tmp_path, "")
    settings = load_settings(path, environ={"app__enableAnonymizer": "false"},
                             overrides={"enable_anonymizer": True, "qido_maximum_results": 5})
    assert settings.enable_anonymizer is True
    assert settings.qido_maximum_results == 5
    assert settings.raw["app:enableAnonymizer"] == "True"
    assert settings.raw["qido:maximumResultsLimit"] == "5"


def test_string_overrides_are_parsed_and_validated(tmp_path):
    path = write_config(tmp_path, "")
    with pytest.raises(ConfigurationError) as info:
        load_settings(path, environ={}, overrides={"qido_maximum_results": "lots"})
    assert any(p.startswith("qido:maximumResultsLimit") for p in info.value.problems)


def test_unknown_override_is_reported(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        load_settings(write_config(tmp_path, ""), environ={}, overrides={"app:noSuchThing": "1"})
    assert info.value.problems == ["override 'app:noSuchThing' is not a known setting"]


# --------------------------------------------------------------------------------------------------------
# Validation: every problem is reported at once
# --------------------------------------------------------------------------------------------------------

def test_several_bad_values_are_all_reported_in_one_error(tmp_path):
    path = write_config(tmp_path, "\n".join([
        add("qido:maximumResultsLimit", "abc"),
        add("app:storecommand.validateDuplicateInstance", "maybe"),
        add("app:WadoRsUrl", "ftp://x"),
    ]))
    with pytest.raises(ConfigurationError) as info:
        load_settings(path, environ={})
    problems = info.value.problems
    assert len(problems) == 3
    assert any(p.startswith("qido:maximumResultsLimit") and "abc" in p for p in problems)
    assert any(p.startswith("app:storecommand.validateDuplicateInstance") and "maybe" in p for p in problems)
    assert any(p.startswith("app:WadoRsUrl") and "ftp://x" in p for p in problems)
    message = str(info.value)
    assert all(p in message for p in problems)


def test_problems_from_web_config_environment_and_overrides_are_collected_together(tmp_path):
    path = write_config(tmp_path, add("qido:maximumResultsLimit", "abc"))
    with pytest.raises(ConfigurationError) as info:
        load_settings(path, environ={"app__storecommand_validateDuplicateInstance": "maybe"},
                      overrides={"app:WadoUriUrl": "wadouri.example", "bogus": 1})
    problems = info.value.problems
    assert len(problems) == 4
    for prefix in ("qido:maximumResultsLimit:", "app:storecommand.validateDuplicateInstance:",
                   "app:WadoUriUrl:", "override 'bogus'"):
        assert sum(p.startswith(prefix) for p in problems) == 1, (prefix, problems)


@pytest.mark.parametrize("key, value, fragment", [
    ("qido:maximumResultsLimit", "0", "at least 1"),
    ("qido:maximumResultsLimit", "-5", "at least 1"),
    ("stow:maxPartHeaderBytes", "100", "at least 1024"),
    ("stow:maxRequestBytes", "-1", "at least 0"),
    ("stow:maxRequestBytes", "1.5", "stow:maxRequestBytes"),
    ("app:enableAnonymizer", "enabled", "expected true or false"),
    ("app:logLevel", "verbose", "unknown level"),
    ("app:WadoRsUrl", "pacs.example.com/api", "absolute http(s) URL"),
    ("app:WadoUriUrl", "ftp://pacs/wadouri", "absolute http(s) URL"),
    ("app:PacsStorageConnection", "   ", "must not be empty"),
    ("app:PacsDataArchieve", "", "must not be empty"),
])
def test_single_bad_value_is_reported_with_its_key(tmp_path, key, value, fragment):
    path = write_config(tmp_path, add(key, value))
    with pytest.raises(ConfigurationError) as info:
        load_settings(path, environ={})
    (problem,) = info.value.problems
    assert problem.startswith(key)
    assert fragment in problem


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "ERROR", "critical"])
def test_log_levels_are_case_insensitive(tmp_path, level):
    assert load_settings(write_config(tmp_path, add("app:logLevel", level)), environ={}).log_level == level


def test_minimum_values_are_accepted(tmp_path):
    path = write_config(tmp_path, "\n".join([add("qido:maximumResultsLimit", "1"),
                                             add("stow:maxPartHeaderBytes", "1024"),
                                             add("stow:maxRequestBytes", "0")]))
    settings = load_settings(path, environ={})
    assert (settings.qido_maximum_results, settings.max_part_header_bytes, settings.max_request_bytes) == \
        (1, 1024, 0)


@pytest.mark.parametrize("url", ["http://pacs/api", "https://pacs.example.com:8443/dicomweb"])
def test_http_and_https_urls_are_accepted(tmp_path, url):
    path = write_config(tmp_path, "\n".join([add("app:WadoRsUrl", url), add("app:WadoUriUrl", url)]))
    settings = load_settings(path, environ={})
    assert settings.wado_rs_url == settings.wado_uri_url == url


# --------------------------------------------------------------------------------------------------------
# Paths: |DataDirectory|, relative paths and backslashes
# --------------------------------------------------------------------------------------------------------

def test_data_directory_is_app_data_beside_web_config(tmp_path):
    site = tmp_path / "site"
    settings = load_settings(write_config(site, ""), environ={})
    assert settings.config_path == site / "web.config"
    assert settings.data_directory == site / "App_Data"
    assert settings.resolve_path(settings.storage_connection) == site / "App_Data" / "Storage"
    assert settings.resolve_path(settings.temp_directory) == site / "App_Data" / "tmp"


def test_database_url_expands_data_directory(tmp_path):
    site = tmp_path / "site"
    settings = load_settings(write_config(site, ""), environ={})
    assert settings.expand(settings.database_url) == f"sqlite:///{site}/App_Data/pacs.sqlite3"


def test_expand_leaves_text_without_placeholder_alone(tmp_path):
    settings = load_settings(write_config(tmp_path, ""), environ={})
    url = "postgresql+psycopg2://user:pw@db:5432/pacs"
    assert settings.expand(url) == url


def test_relative_paths_resolve_against_the_web_config_folder_not_cwd(tmp_path, monkeypatch):
    site = tmp_path / "site"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(write_config(site, add("app:PacsStorageConnection", "Blobs/dicom")), environ={})
    assert settings.resolve_path(settings.storage_connection) == site / "Blobs" / "dicom"


def test_a_relative_config_path_is_made_absolute(tmp_path, monkeypatch):
    write_config(tmp_path / "site", "")
    monkeypatch.chdir(tmp_path)
    settings = load_settings("site/web.config", environ={})
    assert settings.config_path == tmp_path / "site" / "web.config"
    assert settings.config_path.is_absolute()
    assert settings.data_directory == tmp_path / "site" / "App_Data"


def test_backslashes_work_in_data_directory_paths(tmp_path):
    site = tmp_path / "site"
    settings = load_settings(write_config(site, add("app:PacsStorageConnection", r"|DataDirectory|\Storage\dicom")),
                             environ={})
    assert settings.resolve_path(settings.storage_connection) == site / "App_Data" / "Storage" / "dicom"


def test_backslashes_work_in_relative_paths(tmp_path):
    site = tmp_path / "site"
    settings = load_settings(write_config(site, add("app:tempDirectory", r"..\spool\uploads")), environ={})
    resolved = settings.resolve_path(settings.temp_directory)
    assert resolved == site / ".." / "spool" / "uploads"
    assert resolved.resolve() == tmp_path / "spool" / "uploads"


def test_absolute_paths_are_kept(tmp_path):
    target = tmp_path / "mnt" / "dicom"
    settings = load_settings(write_config(tmp_path / "site", add("app:PacsStorageConnection", str(target))),
                             environ={})
    assert settings.resolve_path(settings.storage_connection) == target


def test_environment_path_with_data_directory_resolves_beside_web_config(tmp_path):
    site = tmp_path / "site"
    settings = load_settings(write_config(site, ""), environ={"app__tempDirectory": r"|DataDirectory|\spool"})
    assert settings.resolve_path(settings.temp_directory) == site / "App_Data" / "spool"


def test_namespaced_configuration_root_is_read(tmp_path):
    """Visual Studio 2005 web.config files carry a namespace on <configuration>; .NET reads them."""
    path = tmp_path / "web.config"
    path.write_text('<configuration xmlns="http://schemas.microsoft.com/.NetConfiguration/v2.0">'
                    '<appSettings><add key="app:WadoRsUrl" value="https://pacs/api"/></appSettings>'
                    "</configuration>", encoding="utf-8")
    assert read_app_settings(path) == {"app:WadoRsUrl": "https://pacs/api"}
