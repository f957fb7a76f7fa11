"""PS3.15 Annex E de-identification: the Basic Application Level Confidentiality Profile and its Options.

- ``profile_table.csv``: Table E.1-1 as data (every row of the 2024b edition).
- ``profile.deidentify(dataset, options, uid_secret)``: the one pure function that applies it.
- ``Deidentifier``: options + secret built once at start (``deidentifier_from_settings``) and kept in
  ``Services.deidentifier`` (app/runtime.py) whether or not app:enableAnonymizer is on. STOW-RS uses it
  on store when the setting is on; WADO-URI ``anonymize=yes`` can call ``deidentifier.deidentify(dataset)``
  on the copy it sends (an object de-identified on store gets new UIDs again if it is de-identified twice
  without Retain UIDs: check PatientIdentityRemoved first if that matters).
- ``part10.deidentify_file``: the same on a Part-10 file, in place.
"""
from __future__ import annotations

from app.anonymize.part10 import DeidentificationError, deidentify_file
from app.anonymize.profile import (DeidentificationReport, Deidentifier, Options, deidentify, load_table,
                                   map_uid, parse_options)
from app.anonymize.secret import resolve_uid_secret

__all__ = ["DeidentificationError", "DeidentificationReport", "Deidentifier", "Options",
           "deidentifier_from_settings", "deidentify", "deidentify_file", "load_table", "map_uid",
           "parse_options", "resolve_uid_secret"]


def deidentifier_from_settings(settings) -> Deidentifier:
    """app:anonymizerOptions + app:anonymizerUidSecret (or App_Data/anonymizer.key) -> Deidentifier.

    Raises ConfigurationError for an unknown option name. The key is resolved on first use (or by
    ``resolve_secret()``), so building one costs nothing when nothing is de-identified."""
    options = parse_options(settings.anonymizer_options)
    return Deidentifier(options, lambda: resolve_uid_secret(settings.anonymizer_uid_secret,
                                                            settings.data_directory))
