"""STOW-RS (PS3.18 10.5) without Flask: read parts, store each one, build the response dataset.

Each part is stored on its own: a bad part gets a FailedSOPSequence item and the others go on. A part is
stored in two steps, blob first then index, and undone if the second step fails, so nothing half-written
stays behind: an instance is visible to QIDO/WADO only once its bytes are safely in the blob store.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO

from app.anonymize import DeidentificationError, deidentify_file
from app.codec.assemble import write_part10
from app.codec.instance import InspectedInstance, InvalidInstance, add_missing_preamble, inspect_file
from app.codec.native_xml import from_xml
from app.dicomweb import media
from app.dicomweb.multipart import Part, iter_parts
from app.errors import BadRequest, StorageError, UnsupportedMediaType
from app.index import store as index_store
from app.storage import new_key
from app.stow import status

log = logging.getLogger(__name__)

ACCEPTED_ROOT_TYPES = (media.DICOM, media.DICOM_JSON, media.DICOM_XML)


@dataclass
class StoreContext:
    engine: object
    storage: object
    temp_dir: str
    retrieve_base: str                 # WADO-RS root, e.g. http://host/api
    validate_duplicates: bool = True
    max_header_bytes: int = 65536
    max_request_bytes: int = 0
    deidentifier: object = None        # app.anonymize.Deidentifier when app:enableAnonymizer is true


    @classmethod
    def for_services(cls, services, retrieve_base: str) -> "StoreContext":
        """The context the settings call for (``services``: app.runtime.Services, passed in so this module
        stays free of Flask); shared by the STOW-RS routes and ``python -m app import``."""
        settings = services.settings
        return cls(engine=services.engine, storage=services.storage, temp_dir=str(services.temp_dir),
                   retrieve_base=retrieve_base, validate_duplicates=settings.validate_duplicate_instance,
                   max_header_bytes=settings.max_part_header_bytes,
                   max_request_bytes=settings.max_request_bytes,
                   deidentifier=services.deidentifier if settings.enable_anonymizer else None)


@dataclass
class StoreOutcome:
    referenced: list[dict] = field(default_factory=list)   # stored instances
    failed: list[dict] = field(default_factory=list)
    warned: int = 0
    study_uids: set = field(default_factory=set)
    url_study_uid: str | None = None
    pending: list = field(default_factory=list)   # blobs written, index rows not yet committed

    @property
    def http_status(self) -> int:
        return status.http_status(len(self.referenced), len(self.failed), self.warned)


def request_media(content_type: str | None) -> tuple[str, str]:
    """(root media type, boundary) of a STOW-RS request; 415 for anything but multipart/related of DICOM."""
    parsed = media.parse_media_type(content_type)
    if parsed is None or parsed.type != media.MULTIPART_RELATED:
        raise UnsupportedMediaType(
            f"STOW-RS takes multipart/related; type=\"application/dicom\" (or application/dicom+json, "
            f"application/dicom+xml) bodies, not {content_type or 'a request without Content-Type'}")
    root = (parsed.param("type") or media.DICOM).lower()
    if root not in ACCEPTED_ROOT_TYPES:
        raise UnsupportedMediaType(f"multipart/related type {root!r} is not supported; use one of "
                                   + ", ".join(ACCEPTED_ROOT_TYPES))
    boundary = parsed.param("boundary")
    if not boundary:
        raise BadRequest("multipart/related Content-Type has no boundary parameter")
    return root, boundary


def store_request(stream: BinaryIO, content_type: str | None, url_study_uid: str | None,
                  ctx: StoreContext) -> StoreOutcome:
    root, boundary = request_media(content_type)
    os.makedirs(ctx.temp_dir, exist_ok=True)
    if url_study_uid and ctx.deidentifier is not None:
        # Parts are compared with (and the response names) the study UID as it is stored.
        url_study_uid = ctx.deidentifier.map_uid(url_study_uid)
    outcome = StoreOutcome(url_study_uid=url_study_uid)
    parts = iter_parts(stream, boundary, ctx.temp_dir, max_header_bytes=ctx.max_header_bytes,
                       max_body_bytes=ctx.max_request_bytes)
    if root == media.DICOM:
        try:
            for part in parts:
                try:
                    _store_dicom_part(part, url_study_uid, ctx, outcome)
                finally:
                    part.discard()
        finally:
            flush(ctx, outcome)     # also when the body turns out truncated: finished parts are kept
        return outcome

    collected: list[Part] = []
    try:
        for part in parts:
            collected.append(part)
        _store_metadata_parts(collected, root, url_study_uid, ctx, outcome)
    finally:
        flush(ctx, outcome)
        for part in collected:
            part.discard()
    return outcome


def store_files(paths, ctx: StoreContext, outcome: StoreOutcome | None = None) -> StoreOutcome:
    """Store Part-10 files from disk through exactly the STOW-RS path (bulk import, benchmarks).

    Each file is copied to the spool folder first, so the caller's files are never moved or changed.
    """
    os.makedirs(ctx.temp_dir, exist_ok=True)
    outcome = outcome or StoreOutcome()
    for source in paths:
        fd, path = tempfile.mkstemp(prefix="import-", suffix=".dcm", dir=ctx.temp_dir)
        try:
            with os.fdopen(fd, "wb") as target, open(source, "rb") as handle:
                shutil.copyfileobj(handle, target, 1 << 20)
            _store_file(path, str(source), None, ctx, outcome)
        finally:
            if os.path.exists(path):
                os.unlink(path)
    flush(ctx, outcome)
    return outcome


def _store_dicom_part(part: Part, url_study_uid: str | None, ctx: StoreContext,
                      outcome: StoreOutcome) -> None:
    part_type = media.parse_media_type(part.content_type)
    if part_type is not None and part_type.type != media.DICOM:
        _fail(outcome, status.CANNOT_UNDERSTAND, f"part {part.index + 1} is {part_type.type}, "
                                                 "expected application/dicom")
        return
    _store_file(part.path, f"part {part.index + 1}", url_study_uid, ctx, outcome)


def _store_file(path: str, label: str, url_study_uid: str | None, ctx: StoreContext,
                outcome: StoreOutcome) -> None:
    try:
        add_missing_preamble(path)
        if ctx.deidentifier is not None:
            _deidentify(path, ctx)
        inspected = inspect_file(path)
    except InvalidInstance as exc:
        _fail(outcome, exc.reason, f"{label}: {exc.message}", exc.sop_class_uid, exc.sop_instance_uid)
        return
    if ctx.deidentifier is not None:
        # Reported as WarningReason 0xB000 Coercion of Data Elements (PS3.18 10.5.3, PS3.4 B.2.3).
        inspected.warnings.append("de-identified on store (PS3.15 Annex E)")
    if url_study_uid and inspected.study_instance_uid != url_study_uid:
        _fail(outcome, status.DATA_SET_DOES_NOT_MATCH,
              f"{label}: StudyInstanceUID {inspected.study_instance_uid} differs from {url_study_uid} "
              "in the URL",
              inspected.sop_class_uid, inspected.sop_instance_uid)
        return
    # A duplicate is refused by the index in ``flush`` (one statement fewer per instance than asking first).
    _commit(path, label, inspected, ctx, outcome)


def _deidentify(path: str, ctx: StoreContext) -> None:
    """De-identify the spooled file in place, so the index, metadata and blob only see the result."""
    try:
        deidentify_file(path, ctx.deidentifier)
    except DeidentificationError as exc:
        if not exc.unreadable:
            log.exception("de-identification failed")
        raise InvalidInstance(status.CANNOT_UNDERSTAND if exc.unreadable else status.PROCESSING_FAILURE,
                              exc.message) from exc


INDEX_BATCH = 16
"""Instances whose index rows are committed together (one journal sync per batch, not per instance)."""


def _commit(path: str, label: str, inspected: InspectedInstance, ctx: StoreContext,
            outcome: StoreOutcome) -> None:
    """Blob first; its index row is queued and committed by ``flush`` (the blob is removed again if the
    index refuses the instance), so an instance is visible only once its bytes are safely stored. The
    blob is made durable in ``flush`` too, together with the others of the batch."""
    key = new_key()
    try:
        size = ctx.storage.put_file(key, path, move=True, durable=False)
    except StorageError as exc:
        log.error("%s: blob write failed: %s", label, exc)
        reason = status.OUT_OF_RESOURCES if "No space" in str(exc) else status.PROCESSING_FAILURE
        _fail(outcome, reason, f"{label}: the file could not be written to storage",
              inspected.sop_class_uid, inspected.sop_instance_uid)
        return
    outcome.pending.append((label, inspected, key, size))
    if len(outcome.pending) >= INDEX_BATCH:
        flush(ctx, outcome)


def flush(ctx: StoreContext, outcome: StoreOutcome) -> None:
    """Commit the queued index rows in one transaction and report each instance."""
    pending, outcome.pending = outcome.pending, []
    if not pending:
        return
    try:
        # the bytes are durable before the index names them
        ctx.storage.sync([key for _, _, key, _ in pending])
    except StorageError as exc:
        log.error("blobs could not be made durable: %s", exc)
        for label, inspected, key, _ in pending:
            _discard_blob(ctx, key)
            _fail(outcome, status.PROCESSING_FAILURE, f"{label}: the file could not be written to storage",
                  inspected.sop_class_uid, inspected.sop_instance_uid)
        return
    results = index_store.store_batch(
        ctx.engine, [(inspected, key, size, inspected.layout) for _, inspected, key, size in pending],
        replace=not ctx.validate_duplicates)
    for (label, inspected, key, _), result in zip(pending, results):
        if isinstance(result, Exception):
            _discard_blob(ctx, key)
            if isinstance(result, index_store.DuplicateInstance):
                _fail(outcome, status.DUPLICATE_SOP_INSTANCE,
                      f"{label}: SOP Instance {inspected.sop_instance_uid} is already stored",
                      inspected.sop_class_uid, inspected.sop_instance_uid)
            elif isinstance(result, index_store.InstanceMovedStudy):
                _fail(outcome, status.DATA_SET_DOES_NOT_MATCH, f"{label}: {result}",
                      inspected.sop_class_uid, inspected.sop_instance_uid)
            else:
                log.error("%s: index insert failed: %s: %s", label, type(result).__name__, result)
                _fail(outcome, status.PROCESSING_FAILURE, f"{label}: the index could not record the instance",
                      inspected.sop_class_uid, inspected.sop_instance_uid)
            continue
        if result.replaced_blob_key:
            _discard_blob(ctx, result.replaced_blob_key)
        _reference(outcome, inspected, ctx)


def _reference(outcome: StoreOutcome, inspected: InspectedInstance, ctx: StoreContext) -> None:
    outcome.study_uids.add(inspected.study_instance_uid)
    item = {
        "00081150": {"vr": "UI", "Value": [inspected.sop_class_uid]},
        "00081155": {"vr": "UI", "Value": [inspected.sop_instance_uid]},
        "00081190": {"vr": "UR", "Value": [
            f"{ctx.retrieve_base}/studies/{inspected.study_instance_uid}/series/"
            f"{inspected.series_instance_uid}/instances/{inspected.sop_instance_uid}"]},
    }
    if inspected.warnings:
        item["00081196"] = {"vr": "US", "Value": [status.COERCION_OF_DATA_ELEMENTS]}
        outcome.warned += 1
    outcome.referenced.append(item)


def _discard_blob(ctx: StoreContext, key: str) -> None:
    try:
        ctx.storage.delete(key)
    except StorageError:
        log.exception("could not remove blob %s; it is unreferenced and can be deleted", key)


def _fail(outcome: StoreOutcome, reason: int, message: str, sop_class: str = "",
          sop_instance: str = "") -> None:
    log.info("STOW failure 0x%04X: %s", reason, message)
    item = {"00081197": {"vr": "US", "Value": [reason]}}
    if sop_class:
        item["00081150"] = {"vr": "UI", "Value": [sop_class]}
    if sop_instance:
        item["00081155"] = {"vr": "UI", "Value": [sop_instance]}
    # ErrorComment (0000,0902) is a command element; the DICOM JSON response carries the text in
    # the item for humans and logs, as other origin servers do.
    item["00000902"] = {"vr": "LO", "Value": [message[:1024]]}
    outcome.failed.append(item)


def _store_metadata_parts(parts: list[Part], root: str, url_study_uid: str | None, ctx: StoreContext,
                          outcome: StoreOutcome) -> None:
    """dicom+json / dicom+xml metadata parts plus bulk data parts referenced by Content-Location/ID."""
    by_location: dict[str, Part] = {}
    metadata_parts: list[Part] = []
    for part in parts:
        part_type = media.parse_media_type(part.content_type)
        kind = part_type.type if part_type else root
        if kind == root:
            metadata_parts.append(part)
            continue
        for name in (part.content_location, part.content_id):
            if name:
                by_location[name.strip()] = part
                by_location[name.strip().strip("<>")] = part
    if not metadata_parts:
        raise BadRequest(f"the request has no {root} part")

    def find_part(uri: str) -> Part:
        candidates = [uri, uri.strip("<>")]
        if uri.startswith("cid:"):
            candidates += [uri[4:], f"<{uri[4:]}>"]
        for candidate in candidates:
            if candidate in by_location:
                return by_location[candidate]
        # A location relative to the request's base, matched by its last path segments.
        for location, part in by_location.items():
            if location.endswith(uri) or uri.endswith(location):
                return part
        raise KeyError(uri)

    def resolve(uri: str):
        part = find_part(uri)
        part_type = media.parse_media_type(part.content_type)
        with open(part.path, "rb") as handle:
            data = handle.read()
        if part_type is None:
            return data, None, None
        return data, part_type.type, part_type.param("transfer-syntax")

    for part in metadata_parts:
        label = f"part {part.index + 1}"
        try:
            datasets = _read_metadata(part, root)
        except BadRequest as exc:
            _fail(outcome, status.CANNOT_UNDERSTAND, f"{label}: {exc.message}")
            continue
        for number, dataset_json in enumerate(datasets, start=1):
            item_label = f"{label} dataset {number}" if len(datasets) > 1 else label
            fd, path = tempfile.mkstemp(prefix="assembled-", suffix=".dcm", dir=ctx.temp_dir)
            os.close(fd)
            try:
                write_part10(dataset_json, resolve, path)
            except InvalidInstance as exc:
                os.unlink(path)
                sop_class = _json_value(dataset_json, "00080016")
                sop_instance = _json_value(dataset_json, "00080018")
                _fail(outcome, exc.reason, f"{item_label}: {exc.message}", sop_class, sop_instance)
                continue
            try:
                _store_file(path, item_label, url_study_uid, ctx, outcome)
            finally:
                if os.path.exists(path):
                    os.unlink(path)


def _read_metadata(part: Part, root: str) -> list[dict]:
    with open(part.path, "rb") as handle:
        data = handle.read()
    if root == media.DICOM_XML:
        return [from_xml(data)]
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"dicom+json part is not valid JSON: {exc}") from exc
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(item, dict) for item in parsed):
        raise BadRequest("dicom+json part must be an array of DICOM JSON datasets")
    return parsed


def _json_value(dataset_json: dict, tag: str) -> str:
    try:
        return str(dataset_json[tag]["Value"][0])
    except (KeyError, IndexError, TypeError):
        return ""


def response_dataset(outcome: StoreOutcome, retrieve_base: str) -> dict:
    """The Store Instances Response Module (PS3.18 Table 10.5.3-1) as DICOM JSON."""
    body: dict = {}
    study_uid = outcome.url_study_uid or (next(iter(outcome.study_uids)) if len(outcome.study_uids) == 1
                                          else None)
    if study_uid and outcome.referenced:
        body["00081190"] = {"vr": "UR", "Value": [f"{retrieve_base}/studies/{study_uid}"]}
    if outcome.failed:
        body["00081198"] = {"vr": "SQ", "Value": outcome.failed}
    if outcome.referenced:
        body["00081199"] = {"vr": "SQ", "Value": outcome.referenced}
    return body
