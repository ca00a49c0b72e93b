"""Tampering with SFrame frames in RTP payloads, sans-I/O: where each region lies, one bit flipped, forged frames.

Where the bytes are in an RTP payload of the lab's video (RFC 7741 §4.2 Chrome-style VP8
descriptor, 4 bytes, on every packet): the first packet of a frame (S=1) carries the SFrame header
(RFC 9605 §4.3, KID and CTR, 1-17 bytes) right after the descriptor, the last packet (marker bit)
ends with the AEAD tag (16 bytes for suite 4, §4.5), the ciphertext is in between (§4.2). In
``dtls-srtp`` mode the same places hold the VP8 frame tag (RFC 6386 §9.1, 3 bytes) and the end of
the last partition. :func:`region_span` finds a region, :func:`tamper_frame` and
:func:`tamper_payload` flip one bit of it, :func:`sframe_forgery` and :func:`forged_vp8_frame` make
forged frames. Without a call: :func:`tamper_sweep` runs the tamper functions on real VP8 frames
(:func:`sample_frames`) under every suite, and :func:`payload_layout` shows where the regions
land. The malicious SFU's policies that use them are :mod:`e2ee_lab.attacks.sfu`.
"""


from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from e2ee_lab.crypto.sframe import CipherSuite, MalformedHeader, SFrameError, decode_header, encode_header
from e2ee_lab.crypto.transforms import make_transform
from e2ee_lab.media.codecs import VP8Encoder
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.media.scene import Scene
from e2ee_lab.rtp import RTPError, VP8PayloadDescriptor
from e2ee_lab.rtp.vp8 import vp8_payloads

REGIONS = ("header", "ciphertext", "tag")  #: where :class:`~e2ee_lab.attacks.sfu.Tamper` flips a bit
VP8_FRAME_TAG_LEN = 3  #: RFC 6386 §9.1: key/delta bit, version, show_frame, first partition size
TAG_LEN = 16  #: AEAD tag of the call's SFrame suite 4 (AES_128_GCM_SHA256_128, RFC 9605 §4.5)


# --- tampering, sans-I/O ---------------------------------------------------------------------------


def flip_bit(data: bytes, offset: int, bit: int) -> bytes:
    """``data`` with bit ``bit`` (0 = least significant) of byte ``offset`` inverted."""
    if not 0 <= offset < len(data) or not 0 <= bit < 8:
        raise ValueError(f"no bit {bit} of byte {offset} in {len(data)} bytes")
    return data[:offset] + bytes((data[offset] ^ 1 << bit,)) + data[offset + 1:]


def header_length(body: bytes, *, sframe: bool) -> int:
    """Bytes of the frame header at the start of ``body``: the SFrame header (RFC 9605 §4.3) or,
    for plaintext VP8 (and for an SFrame header that does not parse), the 3-byte VP8 frame tag."""
    if sframe:
        try:
            return decode_header(body)[2]
        except MalformedHeader:
            pass
    return min(VP8_FRAME_TAG_LEN, len(body))


def region_span(body: bytes, region: str, *, first: bool, last: bool, sframe: bool = True,
                tag_length: int = TAG_LEN) -> tuple[int, int] | None:
    """Where ``region`` lies in the frame bytes ``body`` of one packet, as ``(start, end)``, or None.

    ``first``/``last``: the packet is the first (S bit) / last (marker) of its frame. The header is
    at the start of the first packet, the tag at the end of the last one, the ciphertext between
    (this function picks it in the first packet). Raises ValueError for an unknown region.
    """
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}")
    if region == "header":
        span = (0, header_length(body, sframe=sframe)) if first else None
    elif region == "tag":
        span = (max(0, len(body) - tag_length), len(body)) if last else None
    else:
        span = (header_length(body, sframe=sframe), len(body) - (tag_length if last else 0)) if first else None
    return span if span is not None and span[0] < span[1] else None


def _flip_in(body: bytes, span: tuple[int, int], rng: random.Random) -> tuple[bytes, int, int]:
    offset, bit = rng.randrange(*span), rng.randrange(8)
    return flip_bit(body, offset, bit), offset, bit


def tamper_frame(frame: bytes, region: str, rng: random.Random, *, tag_length: int = TAG_LEN) -> bytes:
    """One random bit of ``region`` flipped in a whole SFrame ciphertext (header || ct || tag).

    Raises:
        ValueError: unknown region, or the frame has no byte in it.
    """
    span = region_span(frame, region, first=True, last=True, tag_length=tag_length)
    if span is None:
        raise ValueError(f"a {len(frame)}-byte frame has no {region} bytes")
    return _flip_in(bytes(frame), span, rng)[0]


def tamper_payload(payload: bytes, region: str, rng: random.Random, *, marker: bool, sframe: bool = True,
                   tag_length: int = TAG_LEN) -> tuple[bytes, str] | None:
    """One random bit of ``region`` flipped in a VP8 RTP payload, behind its descriptor.

    Returns ``(payload, "region byte N bit B")`` (N counts from the end of the descriptor), or None
    when this packet holds no byte of ``region`` or is not VP8.
    """
    try:
        descriptor, body = VP8PayloadDescriptor.parse(payload)
    except RTPError:
        return None
    span = region_span(body, region, first=descriptor.starts_frame, last=marker, sframe=sframe,
                       tag_length=tag_length)
    if span is None:
        return None
    flipped, offset, bit = _flip_in(body, span, rng)
    return bytes(payload[: len(payload) - len(body)]) + flipped, f"{region} byte {offset} bit {bit}"


# --- forged frames -------------------------------------------------------------------------------


def sframe_forgery(kid: int, ctr: int, size: int, rng: random.Random) -> bytes:
    """A frame that looks like SFrame: a valid header for (KID, CTR), then random bytes."""
    header = encode_header(kid, ctr)
    return header + rng.randbytes(max(size - len(header), TAG_LEN + 1))


def forged_picture(width: int = 320, height: int = 240) -> np.ndarray:
    """The SFU's own picture: what it injects into a member's stream (RGB, ``(h, w, 3)``)."""
    img = Image.new("RGB", (width, height), (15, 15, 15))
    draw = ImageDraw.Draw(img)
    font_file = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    font = ImageFont.truetype(str(font_file), max(height // 9, 8))
    for i, line in enumerate(("FORGED", "BY THE SFU", "wire 9,000 EUR")):
        draw.text((width // 12, height // 6 + i * height // 5), line, font=font, fill=(255, 200, 0))
    return np.asarray(img, dtype=np.uint8)


@lru_cache(maxsize=4)
def forged_vp8_frame(width: int = 320, height: int = 240) -> bytes:
    """:func:`forged_picture` encoded as one VP8 key frame (libvpx through aiortc)."""
    encoded = VP8Encoder(ssrc=1, fps=15).encode(forged_picture(width, height), force_keyframe=True)
    assert encoded is not None, "libvpx always emits the first (key) frame"
    return encoded.data


# --- experiments without a call: real frames, every suite, one bit each --------------------------


def sample_frames(count: int = 12, seed: int = 0) -> list[bytes]:
    """``count`` real VP8 frames (a key frame, then deltas) of a 320x240 badge scene."""
    scene = Scene(0, seed=seed)
    encoder = VP8Encoder(ssrc=1, fps=scene.fps)
    return [f.data for i in range(count) if (f := encoder.encode(scene.rgb(i))) is not None]


def tamper_sweep(frames: Sequence[bytes], *, suites: Iterable[int] = range(1, 6), per_suite: int = 60,
                 seed: int = 0) -> pd.DataFrame:
    """Encrypt real frames with each suite, flip one bit (header, ciphertext, tag in turn) and decrypt.

    Each tampered frame goes to the receiver transform before its genuine twin, so the genuine one
    decrypting afterwards shows the flip alone caused the rejection. Returns one row per suite and
    region: ``tampered``, ``rejected``, ``reasons``, ``genuine_ok``.
    """
    rng, rows = random.Random(seed), []
    template = EncodedFrame(b"", 0, FrameMetadata(1, 96, "video"), "delta")
    for suite in map(CipherSuite, suites):
        pair = make_transform("e2ee", suite=suite, seed=seed)
        tally = {region: [0, 0, Counter(), 0] for region in REGIONS}
        for i in range(per_suite):
            region, frame = REGIONS[i % len(REGIONS)], template.replace(data=frames[i % len(frames)])
            protected = pair.sender.transform(frame).data
            entry = tally[region]
            entry[0] += 1
            tampered = tamper_frame(protected, region, rng, tag_length=suite.nt)
            try:
                pair.receiver.transform(frame.replace(data=tampered))
            except SFrameError as err:
                entry[1] += 1
                entry[2][err.reason] += 1
            entry[3] += pair.receiver.transform(frame.replace(data=protected)).data == frame.data
        rows += [{"suite": suite.name, "region": region, "tampered": t, "rejected": r,
                  "reasons": ", ".join(f"{k} {v}" for k, v in c.most_common()), "genuine_ok": g}
                 for region, (t, r, c, g) in tally.items()]
    return pd.DataFrame(rows)


def payload_layout(frame: bytes, *, kid: int = 0x3101, max_payload: int = 1100, seed: int = 0) -> pd.DataFrame:
    """Where the SFrame header, ciphertext and tag of one encrypted video frame land in its RTP payloads.

    The frame is encrypted with suite 4 under ``kid`` (default 0x3101: epoch 3, video, member 1, in the
    calls' layout ``epoch << 12 | kind << 8 | member``) and split as the lab's packetizer splits it
    (RFC 7741 descriptors, equal-sized fragments); one row per packet with the byte range and first
    bytes of each region.
    """
    pair = make_transform("e2ee", kid=kid, seed=seed)
    protected = pair.sender.transform(EncodedFrame(frame, 0, FrameMetadata(1, 96, "video"), "key")).data
    payloads = vp8_payloads(protected, picture_id=1, max_payload=max_payload)
    rows = []
    for i, payload in enumerate(payloads):
        descriptor, body = VP8PayloadDescriptor.parse(payload)
        first, last = descriptor.starts_frame, i == len(payloads) - 1
        rows.append({"packet": i, "S bit (first)": first, "marker (last)": last, "payload bytes": len(payload),
                     "VP8 descriptor": payload[: len(payload) - len(body)].hex(" "),
                     **{r: _span_text(body, _layout_span(body, r, first, last)) for r in REGIONS}})
    return pd.DataFrame(rows)


def _layout_span(body: bytes, region: str, first: bool, last: bool) -> tuple[int, int] | None:
    """:func:`region_span`, except that every packet's middle counts as ciphertext."""
    if region != "ciphertext":
        return region_span(body, region, first=first, last=last)
    start = region_span(body, "header", first=True, last=last)[1] if first else 0  # type: ignore[index]
    end = len(body) - (TAG_LEN if last else 0)
    return (start, end) if start < end else None


def _span_text(body: bytes, span: tuple[int, int] | None) -> str:
    if span is None:
        return ""
    start, end = span
    shown = body[start:min(end, start + 6)].hex(" ")
    return f"bytes {start}-{end - 1}: {shown}{' …' if end - start > 6 else ''}"
