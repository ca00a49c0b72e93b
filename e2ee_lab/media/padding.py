"""Padding encoded frames to size buckets before the frame transform, and stripping it after.

A variable-bit-rate codec makes the size of every frame depend on what it carries: Opus speech
frames are about 2.5 times the size of frames in pauses, and SFrame (RFC 9605 §7.1, "no header
confidentiality"; sizes are not hidden either) or SRTP (RFC 6562 §2) keep that size visible. A
sender can hide most of it by padding each frame *before* it is encrypted, so the padding sits
inside the ciphertext where the SFU cannot tell it from media, and the receivers strip it after
decryption. (RTP padding, RFC 3550 §5.1, would not do against the SFU: it terminates SRTP and
reads the padding count in the clear.)

The format is the lab's own, modelled on RTP padding, whose last octet counts the padding octets
including itself, with a two-byte count so that large buckets work::

    padded = frame || 0x00 * (n - 2) || uint16_be(n)      2 <= n, len(padded) % bucket == 0

Every padded frame grows by at least :data:`PAD_COUNT_LENGTH` bytes. :func:`pad_frame` rounds
up to the next multiple of ``bucket``; a bucket larger than any frame gives every frame the same
size (a constant bit rate bought with padding). :func:`unpad_frame` is strict: a count out of
range or a non-zero padding byte raises :class:`BadPadding`, which receivers count and drop.
"""

from __future__ import annotations

from e2ee_lab.media.codecs import CodecError

PAD_COUNT_LENGTH = 2  #: bytes of the trailing big-endian padding count
MAX_BUCKET = 0xFFFF - PAD_COUNT_LENGTH + 1  #: largest bucket whose padding count fits 16 bits


class BadPadding(CodecError):
    """A padded frame whose trailing count or padding bytes are wrong."""

    reason = "bad_padding"


def check_bucket(bucket: int) -> int:
    """Return ``bucket`` if it is a usable bucket size (1..:data:`MAX_BUCKET`), else raise ValueError."""
    if isinstance(bucket, bool) or not isinstance(bucket, int) or not 1 <= bucket <= MAX_BUCKET:
        raise ValueError(f"padding bucket must be an int in 1..{MAX_BUCKET}, not {bucket!r}")
    return bucket


def padded_length(size: int, bucket: int) -> int:
    """The length of a ``size``-byte frame after :func:`pad_frame`: the next multiple of ``bucket``
    that is at least ``size + 2``.

    Raises:
        ValueError: a negative size or a bad bucket.
    """
    check_bucket(bucket)
    if size < 0:
        raise ValueError(f"frame size must be >= 0, not {size}")
    need = size + PAD_COUNT_LENGTH
    return -(-need // bucket) * bucket


def pad_frame(data: bytes, bucket: int) -> bytes:
    """``data`` padded with zero bytes and a two-byte count to a multiple of ``bucket`` bytes.

    Raises:
        ValueError: a bad bucket.
    """
    data = bytes(data)
    count = padded_length(len(data), bucket) - len(data)
    return data + bytes(count - PAD_COUNT_LENGTH) + count.to_bytes(PAD_COUNT_LENGTH, "big")


def unpad_frame(data: bytes) -> bytes:
    """The frame inside a :func:`pad_frame` output.

    Raises:
        BadPadding: shorter than the count, a count below 2 or above the length, or padding bytes
            that are not zero.
    """
    data = bytes(data)
    if len(data) < PAD_COUNT_LENGTH:
        raise BadPadding(f"padded frame of {len(data)} bytes has no {PAD_COUNT_LENGTH}-byte count")
    count = int.from_bytes(data[-PAD_COUNT_LENGTH:], "big")
    if not PAD_COUNT_LENGTH <= count <= len(data):
        raise BadPadding(f"padding count {count} outside {PAD_COUNT_LENGTH}..{len(data)} "
                         f"(frame of {len(data)} bytes)")
    if any(data[len(data) - count:-PAD_COUNT_LENGTH]):
        raise BadPadding(f"the {count - PAD_COUNT_LENGTH} padding bytes are not all zero")
    return data[:len(data) - count]
