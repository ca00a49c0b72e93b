"""The SFU core's hot path on packet bytes: aiortc's RTP checks without a parse, and the header rewrite.

The SFU forwards most packets without parsing or serializing them (:mod:`e2ee_lab.sfu.core`).
:class:`RTPCheck` reads the fixed header (RFC 3550 §5.1) with one ``struct`` call and checks it
exactly as aiortc's ``RtpPacket.parse`` does (version, CSRC count, extension length, padding); the
extension block (RFC 8285 §4.2-4.3) is parsed once per distinct block (cached) to validate it and
to learn whether forwarding would change it (only the negotiated extensions are forwarded, §5).
When it would not, each delivery is the packet with SSRC and sequence number written into a copy
of its header (:func:`rewrite`); otherwise aiortc serializes the packet once. Bad bytes raise
:class:`~e2ee_lab.sfu.errors.MalformedRTP`, which the core counts and drops.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from e2ee_lab.sfu.errors import MalformedRTP

FIXED_HEADER = struct.Struct("!BBHII")  # RFC 3550 §5.1: V P X CC, M PT, sequence, timestamp, SSRC
EXTENSION_HEADER = struct.Struct("!HH")  # RFC 8285 §4.2-4.3: profile, length in 32-bit words
EXTENSION_CACHE_SIZE = 4096  # distinct extension blocks remembered (audio level alone: <= 256)


def rewrite(template: bytes, seq: int, ssrc: int) -> bytes:
    """``template`` with sequence number (bytes 2-3) and SSRC (bytes 8-11) replaced."""
    b0, b1, _, timestamp, _ = FIXED_HEADER.unpack_from(template)
    return FIXED_HEADER.pack(b0, b1, seq, timestamp, ssrc) + memoryview(template)[12:]


def extensions_map(extmap: Mapping[int, str]) -> HeaderExtensionsMap:
    """aiortc's map of RFC 8285 extension id -> URI, from ``{id: uri}``."""
    params = RTCRtpParameters(
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for i, u in extmap.items()]
    )
    result = HeaderExtensionsMap()
    result.configure(params)
    return result


class RTPCheck:
    """``check(data)``: the fixed header's fields and the bytes to forward, or :class:`MalformedRTP`.

    ``extmap`` is the SFU's extension map (what it parses and forwards); the instance remembers up
    to :data:`EXTENSION_CACHE_SIZE` distinct extension blocks and whether each is forwarded as is.
    """

    def __init__(self, extmap: HeaderExtensionsMap) -> None:
        self._extmap = extmap
        self._extension_cache: dict[bytes, bool] = {}  # valid block -> forwarded unchanged?
        self._levels: dict[bytes, int | None] = {}  # valid block -> its RFC 6464 level

    def __call__(self, data: bytes) -> tuple[int, int, int, int, int, bytes]:
        """The fixed header's fields and the bytes to forward (RFC 3550 §5.1, RFC 8285).

        Returns ``(b0, b1, seq, timestamp, ssrc, template)``: the first two header bytes (V P X CC
        and M PT) and the fields of ``template``, the packet as it is to be forwarded.

        Makes the checks of aiortc's ``RtpPacket.parse`` in the same order, without building a
        packet. The bytes to forward are ``data`` itself unless the extension block would change
        (extensions the SFU does not forward, another layout), then aiortc's serialization.

        Raises:
            MalformedRTP: what aiortc's parser would reject.
        """
        size = len(data)
        if size < 12:
            raise MalformedRTP(f"RTP parse failed on {size} bytes: shorter than the fixed header")
        header = FIXED_HEADER.unpack_from(data)
        b0 = header[0]
        if b0 >> 6 != 2:
            raise MalformedRTP(f"RTP parse failed on {size} bytes: version {b0 >> 6}")
        pos = 12 + 4 * (b0 & 0x0F)
        if size < pos:
            raise MalformedRTP(f"RTP parse failed on {size} bytes: truncated CSRC list")
        unchanged = True
        if b0 & 0x10:
            pos, unchanged = self._check_extensions(data, pos)
        if b0 & 0x20:
            padding = data[-1]
            if not padding or padding > size - pos:
                raise MalformedRTP(f"RTP parse failed on {size} bytes: padding length {padding}")
        if unchanged:
            return (*header, data)
        data = RtpPacket.parse(data, self._extmap).serialize(self._extmap)
        return (*FIXED_HEADER.unpack_from(data), data)

    def audio_level(self, data: bytes) -> int | None:
        """The RFC 6464 level (0..127, -dBov) of a packet this check accepted, or None without one.

        Parses the extension block once per distinct block (the same bound as the check's cache).
        """
        b0 = data[0]
        if not b0 & 0x10:
            return None
        pos = 12 + 4 * (b0 & 0x0F)
        profile, words = EXTENSION_HEADER.unpack_from(data, pos)
        block = data[pos:pos + 4 + 4 * words]
        try:
            return self._levels[block]
        except KeyError:
            pass
        value = self._extmap.get(profile, block[4:]).audio_level  # cannot fail: __call__ parsed it
        level = None if value is None else int(value[1])
        if len(self._levels) >= EXTENSION_CACHE_SIZE:
            self._levels.clear()
        self._levels[block] = level
        return level

    def _check_extensions(self, data: bytes, pos: int) -> tuple[int, bool]:
        """End of the extension block at ``pos`` and whether forwarding leaves it as it is."""
        if len(data) < pos + 4:
            raise MalformedRTP(f"RTP parse failed on {len(data)} bytes: truncated extension header")
        profile, words = EXTENSION_HEADER.unpack_from(data, pos)
        end = pos + 4 + 4 * words
        if len(data) < end:
            raise MalformedRTP(f"RTP parse failed on {len(data)} bytes: truncated extension value")
        block = data[pos:end]
        unchanged = self._extension_cache.get(block)
        if unchanged is None:
            try:
                values = self._extmap.get(profile, block[4:])
            except (ValueError, struct.error) as exc:
                raise MalformedRTP(f"RTP parse failed on {len(data)} bytes: {exc}") from exc
            unchanged = self._extmap.set(values) == (profile, block[4:])
            if len(self._extension_cache) >= EXTENSION_CACHE_SIZE:
                self._extension_cache.clear()
            self._extension_cache[block] = unchanged
        return end, unchanged
