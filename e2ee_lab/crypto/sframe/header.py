"""The SFrame header codec (RFC 9605 §4.3): config byte ``X|KKK|Y|CCC``, minimal big-endian KID/CTR extensions.

:func:`encode_header` writes the minimal form; :func:`decode_header` parses strictly (a longer than
minimal KID or CTR is :class:`~e2ee_lab.crypto.sframe.errors.MalformedHeader`: one canonical
encoding, and a cheap early drop; a re-spelled header would fail the tag anyway, since the AAD is
the header bytes as received); :class:`SFrameHeader` is
the same as a wire record. :func:`check_u64`, :func:`byte_view` and :func:`header_field` are the
package's shared checks, used by the key schedule and the context too.
"""

from __future__ import annotations

from dataclasses import dataclass

from e2ee_lab.crypto.sframe.errors import MalformedHeader

MAX_KID = 2**64 - 1  # §4.3: KID is a 64-bit unsigned integer
MAX_CTR = 2**64 - 1  # §4.3: CTR is a 64-bit unsigned integer; it never wraps
MAX_HEADER_LEN = 17  # config byte + 8 KID bytes + 8 CTR bytes


def byte_view(data: object) -> memoryview:
    """A flat byte view of any bytes-like object; TypeError for anything else."""
    view = memoryview(data)  # type: ignore[arg-type]
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def check_u64(name: str, value: int) -> None:
    """TypeError unless ``value`` is an int (not a bool), ValueError unless it is in 0..2^64-1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_CTR:
        raise ValueError(f"{name} must be in 0..2^64-1, got {value}")


def header_field(value: int) -> tuple[int, bytes]:
    """(4-bit field: flag bit + value or length-1, extension bytes) for a KID or CTR."""
    if value < 8:
        return value, b""
    n = (value.bit_length() + 7) >> 3
    return 8 | (n - 1), value.to_bytes(n, "big")


def encode_header(kid: int, ctr: int) -> bytes:
    """Encode the SFrame header for (KID, CTR) in the minimal form of §4.3.

    Raises:
        TypeError: kid or ctr is not an int.  ValueError: either is outside 0..2^64-1.
    """
    check_u64("kid", kid)
    check_u64("ctr", ctr)
    k, kid_bytes = header_field(kid)
    c, ctr_bytes = header_field(ctr)
    # Each 4-bit field is flag|3 bits, so the config byte is simply X|KKK followed by Y|CCC.
    return bytes((k << 4 | c,)) + kid_bytes + ctr_bytes


def _malformed(view, field: str, pos: int, nbytes: int) -> MalformedHeader:
    """The error for a KID/CTR extension that is truncated or not minimal, naming byte counts."""
    present = len(view) - pos
    if present < nbytes:
        return MalformedHeader(
            f"{field} needs {nbytes} bytes at offset {pos}, only {max(present, 0)} present")
    value = int.from_bytes(view[pos : pos + nbytes], "big")
    need = (value.bit_length() + 7) >> 3
    if value < 8:
        return MalformedHeader(
            f"non-minimal {field}: {value} fits in the config byte, sent in {nbytes} bytes")
    return MalformedHeader(f"non-minimal {field}: {value} needs {need} bytes, sent in {nbytes}")


def _extension(data, pos: int, nbytes: int, field: str) -> tuple[int, int]:
    """(value, end offset) of a KID/CTR extension; minimal means a 1-byte value is at least 8
    and a longer one starts with a non-zero byte."""
    end = pos + nbytes
    if len(data) < end:
        raise _malformed(data, field, pos, nbytes)
    first = data[pos]
    if nbytes == 1:
        if first < 8:
            raise _malformed(data, field, pos, nbytes)
        return first, end
    if not first:
        raise _malformed(data, field, pos, nbytes)
    if nbytes == 2:
        return first << 8 | data[pos + 1], end
    return int.from_bytes(data[pos:end], "big"), end


def decode_header(data: bytes) -> tuple[int, int, int]:
    """Parse the SFrame header at the start of ``data``; bytes after it are ignored.

    This parser is strict: a KID or CTR in a longer-than-minimal encoding (an extension for a
    value below 8, or leading zero bytes) is rejected, since §4.3 requires the minimal form: one
    canonical encoding per (KID, CTR), and a cheap drop before any key lookup. (It is not what
    keeps a middlebox from altering the header: the AAD is the header bytes as received, so a
    re-spelled header already fails the tag.)

    Returns:
        (kid, ctr, header_length).
    Raises:
        MalformedHeader: empty, truncated or non-minimal header.  TypeError: not bytes-like.
    """
    if type(data) is not bytes:
        data = byte_view(data)
    try:
        cfg = data[0]
    except IndexError:
        raise MalformedHeader("empty frame: the config byte is missing") from None
    if cfg & 0x88 == 0x08:  # fast path, the usual shape: KID below 8, CTR in 1..8 extra bytes
        end = (cfg & 7) + 2
        if len(data) < end or data[1] < (8 if end == 2 else 1):
            raise _malformed(data, "CTR", 1, end - 1)
        return cfg >> 4, (data[1] << 8 | data[2]) if end == 3 else int.from_bytes(data[1:end], "big"), end
    if cfg & 0x80:
        kid, end = _extension(data, 1, (cfg >> 4 & 7) + 1, "KID")
    else:
        kid, end = cfg >> 4 & 7, 1
    if cfg & 0x08:
        ctr, end = _extension(data, end, (cfg & 7) + 1, "CTR")
    else:
        ctr = cfg & 7
    return kid, ctr, end


def header_length(kid: int, ctr: int) -> int:
    """Length in bytes of the minimal header for (KID, CTR): 1 to 17."""
    return len(encode_header(kid, ctr))


@dataclass(frozen=True)
class SFrameHeader:
    """The SFrame header as a wire record: ``SFrameHeader.parse(data)`` and ``bytes(header)``."""

    kid: int  # key ID, 0..2^64-1
    ctr: int  # frame counter, 0..2^64-1

    def __post_init__(self) -> None:
        check_u64("kid", self.kid)
        check_u64("ctr", self.ctr)

    @classmethod
    def parse(cls, data: bytes) -> SFrameHeader:
        """Parse the header at the start of ``data`` (see :func:`decode_header`)."""
        kid, ctr, _ = decode_header(data)
        return cls(kid, ctr)

    def __bytes__(self) -> bytes:
        return encode_header(self.kid, self.ctr)

    def __len__(self) -> int:
        return header_length(self.kid, self.ctr)
