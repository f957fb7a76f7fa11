"""Streaming multipart/related reader and writer (app.dicomweb.multipart).

Bodies are built by hand and fed through ``ChunkedStream``, which hands out a few bytes per read, so
delimiters, CRLFs and header terminators straddle reads at every possible offset.
"""
from __future__ import annotations

import email.policy
import os
import random
from email.parser import BytesParser
from pathlib import Path

import pytest

from app.dicomweb.multipart import Part, iter_parts, new_boundary, part_header, write_multipart
from app.errors import BadRequest, PayloadTooLarge

BOUNDARY = "dicomcloud-0123456789abcdef"
CHUNK_SIZES = [1, 2, 3, 7, 64, 8191, 1 << 20]


class ChunkedStream:
    """A read-only file-like object returning at most ``chunk`` bytes per read()."""

    def __init__(self, data: bytes, chunk: int):
        self.data = data
        self.chunk = chunk
        self.position = 0
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        want = self.chunk if size is None or size < 0 else min(self.chunk, size)
        piece = self.data[self.position:self.position + want]
        self.position += len(piece)
        return piece


@pytest.fixture
def spool(tmp_path) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir()
    return folder


def read_parts(body: bytes, boundary: str, spool: Path, chunk: int = 8191, **kwargs) -> list[tuple[dict, bytes]]:
    """All parts as (headers, content); each temp file is checked, read and discarded."""
    result = []
    for part in iter_parts(ChunkedStream(body, chunk), boundary, str(spool), **kwargs):
        assert isinstance(part, Part)
        assert Path(part.path).parent == spool
        assert part.index == len(result)
        content = Path(part.path).read_bytes()
        assert part.size == len(content)
        part.discard()
        assert not os.path.exists(part.path)
        result.append((part.headers, content))
    return result


def consume_and_discard(body: bytes, boundary: str, spool: Path, chunk: int, **kwargs) -> int:
    """Read parts, discarding each one as the caller should; return how many were read."""
    count = 0
    for part in iter_parts(ChunkedStream(body, chunk), boundary, str(spool), **kwargs):
        part.discard()
        count += 1
    return count


def build(parts: list[tuple[list[str], bytes]], boundary: str = BOUNDARY, *, preamble: bytes = b"",
          epilogue: bytes = b"", close: bool = True) -> bytes:
    """A multipart body by hand: each part is (header lines, content)."""
    out = bytearray(preamble)
    delimiter = f"--{boundary}".encode()
    for index, (headers, content) in enumerate(parts):
        out += (b"\r\n" if index or preamble else b"") + delimiter + b"\r\n"
        out += b"".join(h.encode("latin-1") + b"\r\n" for h in headers) + b"\r\n"
        out += content
    if close:
        out += (b"\r\n" if parts or preamble else b"") + delimiter + b"--\r\n"
    out += epilogue
    return bytes(out)


# --------------------------------------------------------------------------------------------------------
# Well-formed bodies
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_two_parts_with_headers(spool, chunk):
    body = build([
        (["Content-Type: application/dicom", "Content-Location: file1.dcm", "Content-ID: <a@b>"], b"DICM one"),
        (["content-type:application/dicom+xml"], b"<NativeDicomModel/>"),
    ])
    parts = read_parts(body, BOUNDARY, spool, chunk)
    assert parts == [
        ({"content-type": "application/dicom", "content-location": "file1.dcm", "content-id": "<a@b>"},
         b"DICM one"),
        ({"content-type": "application/dicom+xml"}, b"<NativeDicomModel/>"),
    ]
    assert list(spool.iterdir()) == []


def test_part_properties_and_discard(spool):
    body = build([(["CONTENT-TYPE: application/dicom", "Content-Location: http://x/y", "Content-Id: <1>"],
                   b"abc")])
    (part,) = list(iter_parts(ChunkedStream(body, 5), BOUNDARY, str(spool)))
    assert (part.content_type, part.content_location, part.content_id) == ("application/dicom",
                                                                           "http://x/y", "<1>")
    assert part.index == 0 and part.size == 3
    assert Path(part.path).read_bytes() == b"abc"
    part.discard()
    part.discard()          # a second discard is harmless
    assert list(spool.iterdir()) == []


def test_missing_optional_headers_are_none(spool):
    (part,) = list(iter_parts(ChunkedStream(build([(["X-Other: 1"], b"z")]), 3), BOUNDARY, str(spool)))
    assert part.content_type is None and part.content_location is None and part.content_id is None
    part.discard()


TRICKY_CONTENTS = [
    f"x--{BOUNDARY}".encode(),                                 # delimiter without the preceding CRLF
    f"abc--{BOUNDARY}--def--{BOUNDARY}\r\n".encode(),
    f"x--{BOUNDARY}\r\n--{BOUNDARY}".encode()[:-1],            # CRLF + almost-delimiter
    f"line1\r\n--{BOUNDARY[:-1]}".encode(),                    # CRLF + delimiter missing its last char
    f"\n--{BOUNDARY}\r\n".encode(),                            # LF only before the delimiter
    f"\r--{BOUNDARY}--\r\n".encode(),                          # CR only before the close delimiter
    f"\r\r\n-{BOUNDARY}".encode(),                             # one dash short
    b"\r\n\r\n\r\n",                                          # only CRLFs
    b"\r\n",
    b"\r",
    b"-",
    b"--",
    b"ends with CRLF\r\n",
    b"ends with CR\r",
    b"ends with dashes --",
    b"\r\n-",
    b"\r\n--",
    f"\r\n--{BOUNDARY}"[:-1].encode() + b"\r\n",
    bytes(range(256)) * 3,
]


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_content_near_the_boundary_is_kept_byte_exact(spool, chunk):
    parts_in = [(["Content-Type: application/octet-stream"], content) for content in TRICKY_CONTENTS]
    body = build(parts_in)
    parts = read_parts(body, BOUNDARY, spool, chunk)
    assert [content for _, content in parts] == TRICKY_CONTENTS


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 8191])
def test_single_character_boundary(spool, chunk):
    contents = [b"a-b--b\r\n-b", b"--", b"\r\n-", b"b\r\n"]
    body = build([([], c) for c in contents], boundary="b")
    assert [c for _, c in read_parts(body, "b", spool, chunk)] == contents


@pytest.mark.parametrize("chunk", [1, 3, 8191])
def test_longest_allowed_boundary(spool, chunk):
    boundary = "'()+_,-./:=? " * 15 + "abcde"      # 200 characters, RFC 2046 bchars incl. space
    boundary = boundary[:199] + "z"
    assert len(boundary) == 200
    body = build([(["Content-Type: a/b"], b"payload")], boundary=boundary)
    assert read_parts(body, boundary, spool, chunk) == [({"content-type": "a/b"}, b"payload")]


@pytest.mark.parametrize("chunk", [1, 4, 8191])
def test_preamble_before_the_first_boundary_is_ignored(spool, chunk):
    preamble = (b"This is a multi-part message in MIME format.\r\n"
                + f"x--{BOUNDARY} is not a delimiter here\r\n".encode() + b"\r\n")
    body = build([(["Content-Type: a/b"], b"one")], preamble=preamble)
    assert body.startswith(preamble + f"\r\n--{BOUNDARY}\r\n".encode())
    assert read_parts(body, BOUNDARY, spool, chunk) == [({"content-type": "a/b"}, b"one")]


@pytest.mark.parametrize("chunk", [1, 8191])
def test_body_starting_directly_with_the_boundary(spool, chunk):
    body = f"--{BOUNDARY}\r\nContent-Type: a/b\r\n\r\nfirst\r\n--{BOUNDARY}--".encode()
    assert read_parts(body, BOUNDARY, spool, chunk) == [({"content-type": "a/b"}, b"first")]


@pytest.mark.parametrize("chunk", [1, 2, 8191])
def test_part_with_no_headers(spool, chunk):
    body = f"--{BOUNDARY}\r\n\r\nno headers here\r\n--{BOUNDARY}\r\n\r\n\r\n--{BOUNDARY}--\r\n".encode()
    assert read_parts(body, BOUNDARY, spool, chunk) == [({}, b"no headers here"), ({}, b"")]


@pytest.mark.parametrize("chunk", [1, 3, 8191])
def test_folded_header_lines_are_joined(spool, chunk):
    body = build([([
        "Content-Type: multipart/related;",
        '\ttype="application/dicom";',
        "   boundary=inner",
        "Content-Location: x",
    ], b"data")])
    (headers, content), = read_parts(body, BOUNDARY, spool, chunk)
    assert headers == {"content-type": 'multipart/related; type="application/dicom"; boundary=inner',
                       "content-location": "x"}
    assert content == b"data"


def test_header_names_are_lower_cased_values_stripped_and_colons_kept(spool):
    body = build([(["Content-Location :   http://host:8080/a:b  ", "X-Empty:"], b"")])
    assert read_parts(body, BOUNDARY, spool) == [({"content-location": "http://host:8080/a:b", "x-empty": ""},
                                                  b"")]


@pytest.mark.parametrize("chunk", [1, 2, 8191])
def test_transport_padding_after_delimiters(spool, chunk):
    body = (f"--{BOUNDARY} \t \r\nContent-Type: a/b\r\n\r\none\r\n"
            f"--{BOUNDARY}\t\r\n\r\ntwo\r\n"
            f"--{BOUNDARY}--   \t\r\n").encode()
    assert read_parts(body, BOUNDARY, spool, chunk) == [({"content-type": "a/b"}, b"one"), ({}, b"two")]


@pytest.mark.parametrize("chunk", [1, 7, 8191])
def test_epilogue_after_the_close_delimiter_is_ignored(spool, chunk):
    epilogue = (f"This is the epilogue.\r\n--{BOUNDARY}\r\nContent-Type: evil/part\r\n\r\nnot a part\r\n"
                f"--{BOUNDARY}--\r\n").encode()
    body = build([(["Content-Type: a/b"], b"real")], epilogue=epilogue)
    assert read_parts(body, BOUNDARY, spool, chunk) == [({"content-type": "a/b"}, b"real")]


@pytest.mark.parametrize("chunk", [1, 8191])
def test_close_delimiter_without_trailing_crlf(spool, chunk):
    body = f"--{BOUNDARY}\r\n\r\nx\r\n--{BOUNDARY}--".encode()
    assert read_parts(body, BOUNDARY, spool, chunk) == [({}, b"x")]


@pytest.mark.parametrize("chunk", [1, 8191])
def test_zero_byte_part(spool, chunk):
    body = build([(["Content-Type: application/dicom"], b""), (["Content-Type: a/b"], b"after")])
    parts = list(iter_parts(ChunkedStream(body, chunk), BOUNDARY, str(spool)))
    assert [p.size for p in parts] == [0, 5]
    assert os.path.getsize(parts[0].path) == 0
    assert Path(parts[1].path).read_bytes() == b"after"
    for p in parts:
        p.discard()


def test_body_with_no_parts_at_all(spool):
    assert read_parts(f"--{BOUNDARY}--\r\n".encode(), BOUNDARY, spool, 1) == []


@pytest.mark.parametrize("chunk", [8191, 65537, 1 << 20])
def test_large_random_part_is_byte_exact(spool, chunk):
    data = random.Random(20240607).randbytes(5 * 1024 * 1024)
    assert f"\r\n--{BOUNDARY}".encode() not in data
    body = build([(["Content-Type: application/dicom"], data), (["Content-Type: a/b"], b"tail")])
    parts = read_parts(body, BOUNDARY, spool, chunk)
    assert len(parts) == 2
    assert parts[0][1] == data
    assert parts[1] == ({"content-type": "a/b"}, b"tail")


def test_parts_are_streamed_not_read_all_at_once(spool):
    big = b"\0" * (3 * 1024 * 1024)
    body = build([(["Content-Type: a/b"], b"small"), (["Content-Type: a/b"], big)])
    stream = ChunkedStream(body, 64 * 1024)
    parts = iter_parts(stream, BOUNDARY, str(spool))
    first = next(parts)
    assert Path(first.path).read_bytes() == b"small"
    assert stream.position < len(body) // 2       # the big part has not been read yet
    first.discard()
    second = next(parts)
    assert second.size == len(big)
    second.discard()
    assert list(parts) == []


def test_many_parts(spool):
    contents = [f"part {i}".encode() * i for i in range(200)]
    body = build([([f"Content-ID: <{i}>"], c) for i, c in enumerate(contents)])
    parts = read_parts(body, BOUNDARY, spool, 97)
    assert [h["content-id"] for h, _ in parts] == [f"<{i}>" for i in range(200)]
    assert [c for _, c in parts] == contents


# --------------------------------------------------------------------------------------------------------
# Malformed bodies: BadRequest / PayloadTooLarge, and nothing is left in the spool folder
# --------------------------------------------------------------------------------------------------------

COMPLETE = build([(["Content-Type: application/dicom"], b"A" * 5000), (["Content-Type: application/dicom"],
                                                                        b"B" * 5000)])
TRUNCATIONS = {
    "inside first part content": COMPLETE[:3000],
    "inside second part content": COMPLETE[:COMPLETE.index(b"B") + 100],
    "inside second part headers": COMPLETE[:COMPLETE.index(b"B") - 10],
    "just after a delimiter": COMPLETE[:COMPLETE.index(f"\r\n--{BOUNDARY}".encode()) + len(BOUNDARY) + 4],
    "in the middle of the last delimiter": COMPLETE[:COMPLETE.rindex(b"\r\n--") + 6],
    "half of the closing dashes": COMPLETE[:COMPLETE.rindex(b"--\r\n") + 1],
    "right before the closing delimiter": COMPLETE[:COMPLETE.rindex(b"\r\n--")],
    "after delimiter CR": COMPLETE[:COMPLETE.index(f"--{BOUNDARY}\r\n".encode()) + len(BOUNDARY) + 3],
}


@pytest.mark.parametrize("chunk", [1, 7, 8191])
@pytest.mark.parametrize("name", sorted(TRUNCATIONS))
def test_truncated_body_is_bad_request_and_leaves_no_temp_file(spool, chunk, name):
    body = TRUNCATIONS[name]
    assert not body.endswith(f"--{BOUNDARY}--\r\n".encode())
    with pytest.raises(BadRequest):
        consume_and_discard(body, BOUNDARY, spool, chunk)
    assert list(spool.iterdir()) == []


def test_truncation_message_mentions_the_missing_closing_boundary(spool):
    with pytest.raises(BadRequest) as info:
        consume_and_discard(COMPLETE[:3000], BOUNDARY, spool, 100)
    assert "closing boundary is missing" in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize("chunk", [1, 8191])
@pytest.mark.parametrize("body", [
    b"",
    b"no multipart here at all",
    build([(["Content-Type: a/b"], b"x")], boundary="some-other-boundary"),
    f"--{BOUNDARY}"[:-1].encode() + b"\r\n\r\nx",
    f"x--{BOUNDARY}\r\n\r\nx".encode(),                  # boundary not at the start of a line
])
def test_body_without_the_declared_boundary_is_bad_request(spool, chunk, body):
    with pytest.raises(BadRequest) as info:
        consume_and_discard(body, BOUNDARY, spool, chunk)
    assert "boundary" in info.value.message
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("boundary", ["", "x" * 201])
def test_missing_or_overlong_boundary_is_bad_request(spool, boundary):
    with pytest.raises(BadRequest):
        consume_and_discard(b"--x\r\n\r\n\r\n--x--", boundary, spool, 10)


@pytest.mark.parametrize("chunk", [1, 100, 1 << 20])
def test_oversized_header_block_is_bad_request_whatever_the_read_size(spool, chunk):
    body = build([([f"X-Big: {'a' * 5000}"], b"x")])
    with pytest.raises(BadRequest) as info:
        consume_and_discard(body, BOUNDARY, spool, chunk, max_header_bytes=1024)
    assert "1024" in info.value.message
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("chunk", [1, 100, 1 << 20])
def test_header_block_limit_is_inclusive_and_independent_of_read_size(spool, chunk):
    line = "X-H: " + "h" * 1019
    assert len(line) == 1024
    assert read_parts(build([([line], b"ok")]), BOUNDARY, spool, chunk, max_header_bytes=1024) == \
        [({"x-h": "h" * 1019}, b"ok")]
    with pytest.raises(BadRequest):
        consume_and_discard(build([([line + "h"], b"ok")]), BOUNDARY, spool, chunk, max_header_bytes=1024)


def test_default_header_limit_applies_to_huge_header_blocks(spool):
    body = build([([f"X-Big: {'a' * 70000}"], b"x")])
    with pytest.raises(BadRequest):
        consume_and_discard(body, BOUNDARY, spool, 1 << 20)


@pytest.mark.parametrize("chunk", [1, 8191])
def test_header_line_without_colon_is_bad_request(spool, chunk):
    body = build([(["Content-Type application/dicom"], b"x")])
    with pytest.raises(BadRequest):
        consume_and_discard(body, BOUNDARY, spool, chunk)
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("chunk", [1, 8191])
@pytest.mark.parametrize("delimiter_line", [f"--{BOUNDARY}junk", f"--{BOUNDARY} junk", f"--{BOUNDARY}-"])
def test_garbage_after_a_delimiter_is_bad_request(spool, chunk, delimiter_line):
    body = f"{delimiter_line}\r\nContent-Type: a/b\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()
    with pytest.raises(BadRequest) as info:
        consume_and_discard(body, BOUNDARY, spool, chunk)
    assert "delimiter" in info.value.message


@pytest.mark.parametrize("chunk", [1, 8191])
def test_overlong_transport_padding_is_bad_request(spool, chunk):
    body = f"--{BOUNDARY}{' ' * 5000}\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()
    with pytest.raises(BadRequest):
        consume_and_discard(body, BOUNDARY, spool, chunk)


@pytest.mark.parametrize("chunk", [1, 1000, 1 << 20])
def test_body_over_max_body_bytes_is_payload_too_large(spool, chunk):
    body = build([(["Content-Type: a/b"], b"x" * 100_000)])
    with pytest.raises(PayloadTooLarge) as info:
        consume_and_discard(body, BOUNDARY, spool, chunk, max_body_bytes=50_000)
    assert info.value.status == 413
    assert "50000" in info.value.message
    assert list(spool.iterdir()) == []


def test_limit_is_checked_in_a_later_part(spool):
    body = build([([], b"small"), ([], b"y" * 100_000)])
    with pytest.raises(PayloadTooLarge):
        consume_and_discard(body, BOUNDARY, spool, 4096, max_body_bytes=50_000)
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("chunk", [1, 8191])
def test_body_of_exactly_max_body_bytes_is_accepted(spool, chunk):
    body = build([(["Content-Type: a/b"], b"x" * 10_000)])
    assert read_parts(body, BOUNDARY, spool, chunk, max_body_bytes=len(body)) == \
        [({"content-type": "a/b"}, b"x" * 10_000)]


# --------------------------------------------------------------------------------------------------------
# write_multipart: round trip through iter_parts and through the stdlib email parser
# --------------------------------------------------------------------------------------------------------

def sample_parts() -> list[tuple[dict[str, str], bytes]]:
    rng = random.Random(7)
    return [
        ({"Content-Type": "application/dicom", "Content-Location": "http://pacs/studies/1.2.3"},
         rng.randbytes(300_000)),
        ({"Content-Type": "application/dicom+xml"}, b'<?xml version="1.0"?>\r\n<NativeDicomModel/>\r\n'),
        ({"Content-Type": "application/octet-stream"}, b""),
        ({"Content-Type": "application/octet-stream", "Content-ID": "<x@y>"}, b"\r\n"),
        ({"Content-Type": "application/octet-stream"}, TRICKY_CONTENTS[0] + b"\r" + TRICKY_CONTENTS[2]),
    ]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] + [b""]


@pytest.mark.parametrize("chunk", [1, 13, 8191])
def test_write_multipart_round_trips_through_iter_parts(spool, chunk):
    parts_in = sample_parts()
    if chunk == 1:
        parts_in[0] = (parts_in[0][0], parts_in[0][1][:20_000])
    body = b"".join(write_multipart(BOUNDARY, ((h, chunked(c, 1000)) for h, c in parts_in)))
    parts_out = read_parts(body, BOUNDARY, spool, chunk)
    assert [c for _, c in parts_out] == [c for _, c in parts_in]
    assert [h for h, _ in parts_out] == [{k.lower(): v for k, v in h.items()} for h, _ in parts_in]


def test_write_multipart_output_is_what_rfc_2046_says():
    body = b"".join(write_multipart("b", [({"Content-Type": "a/b"}, [b"one"]), ({}, [b"tw", b"", b"o"])]))
    assert body == b"--b\r\nContent-Type: a/b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\n"


def test_write_multipart_without_parts_reads_back_as_no_parts(spool):
    body = b"".join(write_multipart(BOUNDARY, []))
    assert body == f"--{BOUNDARY}--\r\n".encode()
    assert read_parts(body, BOUNDARY, spool, 1) == []


def test_write_multipart_is_lazy():
    produced = []

    def body():
        produced.append("started")
        yield b"data"

    stream = write_multipart("b", [({}, body())])
    assert produced == []
    assert next(stream) == b"--b\r\n\r\n"
    assert next(stream) == b"data"
    assert produced == ["started"]


def test_write_multipart_is_read_identically_by_the_email_parser(spool):
    parts_in = sample_parts()
    boundary = new_boundary()
    body = b"".join(write_multipart(boundary, ((h, [c]) for h, c in parts_in)))
    ours = read_parts(body, boundary, spool, 4096)

    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f'Content-Type: multipart/related; type="application/dicom"; boundary="{boundary}"\r\n'
        "MIME-Version: 1.0\r\n\r\n".encode() + body)
    assert message.is_multipart()
    assert not message.defects
    theirs = [({k.lower(): str(v) for k, v in p.items()}, p.get_payload(decode=True))
              for p in message.get_payload()]
    assert theirs == ours
    assert [c for _, c in ours] == [c for _, c in parts_in]


def test_hand_built_body_with_preamble_and_epilogue_agrees_with_the_email_parser(spool):
    body = build([(["Content-Type: a/b", "Content-Location: one"], b"first\r\n"),
                  ([], b"x--" + BOUNDARY.encode()),
                  (["Content-Type: c/d"], b"")],
                 preamble=b"preamble text\r\n", epilogue=b"epilogue text\r\n")
    ours = read_parts(body, BOUNDARY, spool, 3)
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: multipart/related; boundary={BOUNDARY}\r\n\r\n".encode() + body)
    theirs = [({k.lower(): str(v) for k, v in p.items()}, p.get_payload(decode=True) or b"")
              for p in message.get_payload()]
    assert theirs == ours


def test_new_boundary_is_unique_and_usable():
    boundaries = {new_boundary() for _ in range(100)}
    assert len(boundaries) == 100
    for boundary in boundaries:
        assert boundary.startswith("dicomcloud-")
        assert len(boundary) <= 70          # RFC 2046 limit
        assert boundary.isascii() and " " not in boundary


def test_part_header_format():
    assert part_header("b", {"Content-Type": "application/dicom", "Content-Location": "x"}) == \
        b"--b\r\nContent-Type: application/dicom\r\nContent-Location: x\r\n\r\n"
    assert part_header("b", {}) == b"--b\r\n\r\n"


def test_multipart_length_matches_what_write_multipart_writes():
    from app.dicomweb.multipart import multipart_length
    parts = [({"Content-Type": "application/dicom", "Content-Location": "http://x/1"}, b"a" * 1000),
             ({"Content-Type": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"}, b""),
             ({}, b"\r\n--b\r\n" * 7)]
    for count in range(len(parts) + 1):
        chosen = parts[:count]
        written = b"".join(write_multipart("b-1", ((h, [body]) for h, body in chosen)))
        assert multipart_length("b-1", [(h, len(body)) for h, body in chosen]) == len(written)


class RandomChunkStream(ChunkedStream):
    """Reads of random sizes, so delimiters fall at every position relative to the pieces."""

    def __init__(self, data: bytes, seed: int):
        super().__init__(data, 1)
        self.rng = random.Random(seed)

    def read(self, size: int = -1) -> bytes:
        self.chunk = self.rng.choice([1, 2, 5, 17, 40, 41, 42, 43, 44, 100, 4096, 70_000])
        return super().read(size)


@pytest.mark.parametrize("seed", range(40))
def test_delimiters_anywhere_relative_to_the_reads(spool, seed):
    """Bodies holding near-delimiters (the boundary without its CRLF, a truncated delimiter, CR/LF runs)
    come out byte-exact whatever sizes the stream's reads have."""
    rng = random.Random(seed)
    boundary = "b" + "x" * rng.randint(0, 30)
    traps = [b"--" + boundary.encode(), b"\r\n--" + boundary.encode()[:-1], b"\r\n\r\n", b"\r", b"\n", b"-"]
    bodies = []
    for _ in range(rng.randint(1, 5)):
        pieces = [rng.choice(traps) if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 3000))
                  for _ in range(rng.randint(0, 12))]
        body = b"".join(pieces)
        if b"\r\n--" + boundary.encode() not in b"\r\n" + body:    # traps may join into a real delimiter
            bodies.append(body)
    parts = [({"Content-Type": "application/dicom"}, [body]) for body in bodies]
    wire = b"".join(write_multipart(boundary, parts))
    found = []
    for part in iter_parts(RandomChunkStream(wire, seed), boundary, str(spool)):
        found.append(Path(part.path).read_bytes())
        assert part.size == len(found[-1])
        part.discard()
    assert found == bodies
