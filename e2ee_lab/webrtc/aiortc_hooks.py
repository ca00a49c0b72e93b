"""Every reach into aiortc's private attributes, in one place, with a self-test.

aiortc (pinned 1.16.0) has no public Encoded Transform (W3C WebRTC Encoded Transform) and no
API for forwarding RTP: its maintainer answered both requests (aiortc#374, aiortc#627) with
"hack away". The hooks here are per instance: each wraps one private method or fills one private
slot of one aiortc object, and no aiortc class or module is changed. The package's only
process-wide change lives elsewhere and touches no private name:
:func:`e2ee_lab.webrtc.loopback.loopback_ice` replaces aioice's public module function
``aioice.ice.get_host_addresses`` while a ``with`` block is open (the calls open it around the
offer/answer exchange, where candidates are gathered) and restores it on exit.

send side (between encoder and packetizer, the W3C Encoded Transform point)
    ``RTCRtpSender._RTCRtpSender__encoder``: the lazily created encoder slot; a
    :class:`TransformingEncoder` is put there before ``send()`` runs. For VP8 it shadows the inner
    ``Vp8Encoder._packetize`` (a classmethod) on the instance, so the transform sees the whole
    encoded frame before RFC 7741 packetization; for Opus each payload is one frame.
receive side (after the jitter buffer reassembled a frame, before the decoder thread)
    ``RTCRtpReceiver._RTCRtpReceiver__jitter_buffer`` and its ``add(packet) -> (pli, frame)``:
    wrapped, so a frame can be transformed, or dropped with a key-frame request (RFC 4585
    §6.3.1 PLI). The decoder thread never sees a frame that failed, so a decryption failure can
    neither kill it nor make it request a key frame per frame.
forwarding and feedback (the SFU)
    ``RTCRtpReceiver._handle_rtp_packet`` (every RTP packet after SRTP unprotect),
    ``RTCRtpReceiver._send_rtcp_pli``, ``RTCRtpSender._handle_rtcp_packet`` (RTCP for a sender),
    ``RTCRtpSender._ssrc`` and ``RTCDtlsTransport._send_rtp`` (SRTP-protect and send on a leg).
the wire (what an observer on ``lo`` sees)
    ``RTCIceTransport._send`` (an instance attribute aiortc sets to aioice's ``Connection.send``):
    wrapped, so a copy of each datagram a DTLS transport sends, SRTP-protected, can be kept.
the ICE sockets
    ``RTCIceGatherer._connection._protocols`` (aioice's ``Connection``, its gathered sockets):
    read by :func:`ice_sockets`, so a call can enlarge their receive buffers.
keys (RFC 5764 §4.2)
    ``RTCDtlsTransport._ssl`` (the pyOpenSSL connection, whose exporter can be run again after
    the handshake) and ``RTCDtlsTransport._role`` ("client" or "server").

:data:`PRIVATE_ATTRIBUTES` lists them; :func:`missing_attributes` builds real aiortc objects (no
network) and reports any that no longer exist, and :func:`check_aiortc` raises
:class:`~e2ee_lab.webrtc.errors.AiortcChanged` then.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiortc import RTCPeerConnection
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase
from aiortc.rtp import RtpPacket

from .errors import AiortcChanged

#: (class, attribute, why) for every private name this module touches.
PRIVATE_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("RTCRtpSender", "_RTCRtpSender__encoder", "encoder slot: the transforming encoder goes here"),
    ("Vp8Encoder", "_packetize", "shadowed per instance: the whole VP8 frame before packetization"),
    ("RTCRtpSender", "_ssrc", "the sender's SSRC (forwarded packets are rewritten to it)"),
    ("RTCRtpSender", "_handle_rtcp_packet", "wrapped: PLI/FIR counted, forwarded by the SFU"),
    ("RTCRtpReceiver", "_RTCRtpReceiver__jitter_buffer", "its add() wrapped: receive transform, frame stealing"),
    ("RTCRtpReceiver", "_handle_rtp_packet", "wrapped: the SFU taps and forwards every RTP packet"),
    ("RTCRtpReceiver", "_send_rtcp_pli", "wrapped to count PLIs; called to forward one"),
    ("RTCDtlsTransport", "_send_rtp", "SRTP-protect and send a forwarded packet; wrapped as a send tap"),
    ("RTCIceTransport", "_send", "wrapped: a copy of each protected datagram sent (the wire view)"),
    ("RTCDtlsTransport", "_ssl", "pyOpenSSL connection: the RFC 5764 exporter for the key log"),
    ("RTCDtlsTransport", "_role", "DTLS client or server: which half of the exported keys is ours"),
    ("RTCIceGatherer", "_connection", "aioice Connection: its request_received wrapped to refuse checks "
                                      "from non-loopback sources (no peer-reflexive pair off 127.0.0.1)"),
    ("Connection", "_protocols", "aioice's gathered sockets: their receive buffers are enlarged"),
)

RtpHandler = Callable[[RtpPacket], Awaitable[None]]
#: receive hook: (ssrc, frame bytes, RTP timestamp) -> (bytes for the decoder or None, ask for a key frame)
FrameHook = Callable[[int, bytes, int], "tuple[bytes | None, bool]"]
#: send hook: (frame bytes, media timestamp) -> bytes to packetize, or None to drop the frame
SendHook = Callable[[bytes, int], "bytes | None"]
#: payload hook, instead of aiortc's packetizer: (frame bytes, media timestamp, aiortc's VP8
#: packetizer or None for audio, PictureID) -> the RTP payloads to send (none: frame dropped)
PayloadHook = Callable[[bytes, int, "Callable[[bytes, int], list[bytes]] | None", int], "list[bytes]"]


# --- send side --------------------------------------------------------------------------------------


class TransformingEncoder(Encoder):
    """An aiortc encoder that runs ``hook`` on every encoded frame before it is packetized.

    ``hook(data, timestamp)`` gets the whole frame and its media timestamp (90 kHz for video, 48
    kHz for Opus; aiortc adds the stream's random RTP timestamp origin later) and returns the bytes
    to packetize, or None to drop the frame. ``encode`` runs on aiortc's executor threads; the
    hook must be thread-safe. ``target_bitrate`` is forwarded, so REMB still steers VP8.
    """

    def __init__(self, inner: Encoder, hook: SendHook, payloads: PayloadHook | None = None) -> None:
        self._inner, self._hook, self._payloads = inner, hook, payloads
        self._source = None  # the frame or packet being encoded (video)
        self.video = isinstance(inner, Vp8Encoder)
        if self.video:
            packetize = inner._packetize  # the bound classmethod

            def transformed_packetize(buffer: bytes, picture_id: int) -> list[bytes]:
                if payloads is not None:  # another payload format replaces aiortc's packetizer
                    return payloads(buffer, self._media_timestamp(), packetize, picture_id) if buffer else []
                data = hook(buffer, self._media_timestamp()) if buffer else None
                return packetize(data, picture_id) if data else []

            inner._packetize = transformed_packetize  # type: ignore[method-assign]

    def _media_timestamp(self) -> int:
        """The timestamp aiortc will give the frame being encoded. PyAV rescales a frame's pts to
        the codec's time base while encoding, so it is read after encoding, as aiortc does."""
        source = self._source
        return convert_timebase(source.pts, source.time_base, VIDEO_TIME_BASE)

    def encode(self, frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        """Encode ``frame``; the hook sees (and may replace or drop) the encoded frame."""
        if self.video:
            self._source = frame
            return self._inner.encode(frame, force_keyframe)
        payloads, timestamp = self._inner.encode(frame, force_keyframe)
        return self._each(payloads, timestamp), timestamp

    def pack(self, packet) -> tuple[list[bytes], int]:
        """Pre-encoded input (aiortc's public ``pack`` path) goes through the hook as well."""
        if self.video:
            self._source = packet
            return self._inner.pack(packet)
        payloads, timestamp = self._inner.pack(packet)
        return self._each(payloads, timestamp), timestamp

    def _each(self, payloads: list[bytes], timestamp: int) -> list[bytes]:
        if self._payloads is not None:
            return [q for p in payloads for q in self._payloads(p, timestamp, None, 0)]
        out = (self._hook(p, timestamp) for p in payloads)
        return [p for p in out if p]

    @property
    def target_bitrate(self) -> int | None:
        return getattr(self._inner, "target_bitrate", None)

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        if hasattr(self._inner, "target_bitrate"):
            self._inner.target_bitrate = bitrate


def install_sender_transform(sender, make_hook: Callable[[str], SendHook | None],
                             payloads: PayloadHook | None = None) -> None:
    """Run a transform on ``sender``'s encoded frames once its codec is negotiated.

    ``make_hook(mime_type)`` returns the hook for that codec (or None to leave it alone); it is
    called when aiortc starts the sender, and the encoder it wraps is aiortc's own for the codec.
    ``payloads``, if given, makes the RTP payloads itself (another payload format; the hook then
    does not run).
    """
    from aiortc.codecs import get_encoder

    original = sender.send

    async def send(parameters) -> None:
        codec = parameters.codecs[0]
        hook = make_hook(codec.mimeType)
        if hook is not None and sender._RTCRtpSender__encoder is None:
            sender._RTCRtpSender__encoder = TransformingEncoder(get_encoder(codec), hook, payloads)
        await original(parameters)

    sender.send = send


def sender_ssrc(sender) -> int:
    """The SSRC ``sender`` sends with (aiortc draws it when the sender is made)."""
    return int(sender._ssrc)


def tap_rtcp(sender, handler: Callable[[object], Awaitable[None]]) -> None:
    """Call ``handler(packet)`` for every RTCP packet routed to ``sender``, then aiortc's handler."""
    original = sender._handle_rtcp_packet

    async def handle(packet) -> None:
        await handler(packet)
        await original(packet)

    sender._handle_rtcp_packet = handle


# --- receive side -----------------------------------------------------------------------------------


def install_receiver_transform(receiver, hook: FrameHook) -> None:
    """Run ``hook`` on every frame ``receiver``'s jitter buffer completes, before the decoder.

    The hook returns the bytes to decode, or None to drop the frame; its second value asks for a
    key frame (a PLI to the sender). The jitter buffer's own PLI requests pass through.
    """
    buffer = receiver._RTCRtpReceiver__jitter_buffer
    original = buffer.add

    def add(packet: RtpPacket):
        pli, frame = original(packet)
        if frame is None:
            return pli, None
        data, want_key_frame = hook(packet.ssrc, frame.data, frame.timestamp)
        if data is None:
            return pli or want_key_frame, None
        frame.data = data
        return pli, frame

    buffer.add = add


def intercept_rtp(receiver, make_handler: Callable[[Callable[[RtpPacket, int], Awaitable[None]]],
                                                   Callable[[RtpPacket, int], Awaitable[None]]]) -> None:
    """Put ``make_handler(aiortc_handler)`` in place of ``receiver``'s RTP packet handler: the new
    handler decides what aiortc sees (another payload format's depacketizer in front of aiortc's)."""
    receiver._handle_rtp_packet = make_handler(receiver._handle_rtp_packet)


def tap_rtp(receiver, handler: RtpHandler) -> None:
    """Call ``handler(packet)`` for every RTP packet ``receiver`` gets (after SRTP unprotect),
    before aiortc's own handling (statistics, NACK, jitter buffer). ``handler`` must not change
    the packet."""
    original = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        await handler(packet)
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle


def count_plis(receiver, counter: Callable[[int], None]) -> None:
    """Call ``counter(media_ssrc)`` for every PLI ``receiver`` sends, whoever asked for it."""
    original = receiver._send_rtcp_pli

    async def send_pli(media_ssrc: int) -> None:
        counter(media_ssrc)
        await original(media_ssrc)

    receiver._send_rtcp_pli = send_pli


async def request_key_frame(receiver, media_ssrc: int) -> None:
    """Send a PLI for ``media_ssrc`` to the sender ``receiver`` listens to."""
    await receiver._send_rtcp_pli(media_ssrc)


# --- transports ---------------------------------------------------------------------------------------


async def send_rtp(transport, data: bytes) -> None:
    """SRTP-protect ``data`` (an RTP or RTCP packet) with ``transport``'s key and send it.

    Raises:
        ConnectionError: the transport is not connected.
    """
    await transport._send_rtp(data)


def tap_sent_rtp(transport, handler: Callable[[bytes], None]) -> None:
    """Call ``handler(plaintext)`` for every RTP/RTCP packet ``transport`` protects and sends."""
    original = transport._send_rtp

    async def send(data: bytes) -> None:
        handler(data)
        await original(data)

    transport._send_rtp = send


def tap_sent_datagrams(transport, handler: Callable[[bytes], None]) -> None:
    """Call ``handler(datagram)`` for every datagram the DTLS ``transport`` hands its ICE transport
    (SRTP, SRTCP and DTLS records, after protection): exactly the UDP payloads an observer sees."""
    ice = transport.transport
    original = ice._send

    async def send(data: bytes) -> None:
        handler(data)
        await original(data)

    ice._send = send


def dtls_state(transport):
    """``(pyOpenSSL connection, role)`` of a connected ``RTCDtlsTransport`` (role "client"/"server")."""
    return transport._ssl, transport._role


# --- self-test ----------------------------------------------------------------------------------------


def _has(obj, name: str) -> bool:
    return hasattr(obj, name)


async def _missing_async() -> list[str]:
    pc = RTCPeerConnection()
    try:
        video = pc.addTransceiver("video")
        sender, receiver, transport = video.sender, video.receiver, video.receiver.transport
        objects = {"RTCRtpSender": sender, "RTCRtpReceiver": receiver, "RTCDtlsTransport": transport,
                   "RTCIceTransport": transport.transport, "RTCIceGatherer": transport.transport.iceGatherer,
                   "Connection": getattr(transport.transport.iceGatherer, "_connection", None),
                   "Vp8Encoder": Vp8Encoder()}
        missing = [f"{cls}.{name}" for cls, name, _ in PRIVATE_ATTRIBUTES
                   if not _has(objects[cls], name)]
        buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
        if buffer is not None and not callable(getattr(buffer, "add", None)):
            missing.append("JitterBuffer.add")
        if not isinstance(Vp8Encoder.__dict__.get("_packetize"), classmethod):
            missing.append("Vp8Encoder._packetize as a classmethod")
        return missing
    finally:
        await pc.close()


def refuse_foreign_checks(ice_transport, accept: Callable[[str], bool], on_refused: Callable[[str], None]) -> None:
    """Ignore ICE connectivity checks whose source address ``accept`` rejects (before any reply).

    A browser outside a network namespace sends checks to 127.0.0.1 from its candidates on other
    interfaces; the kernel delivers them over ``lo`` with that interface's address as the source,
    and aioice would answer and learn a peer-reflexive pair (RFC 8445 §7.3.1.3) off loopback.
    Refused checks are counted through ``on_refused(address)``; the loopback pair still succeeds.
    """
    connection = ice_transport.iceGatherer._connection
    original = connection.request_received

    def request_received(message, addr, protocol) -> None:
        if not accept(addr[0]):
            on_refused(addr[0])
            return
        original(message, addr, protocol)

    connection.request_received = request_received


def ice_sockets(pc) -> list:
    """The UDP sockets aioice gathered for ``pc``'s transceivers (after gathering; bundled
    transceivers share them)."""
    sockets, seen = [], set()
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        for protocol in connection._protocols:
            sock = protocol.transport.get_extra_info("socket") if protocol.transport is not None else None
            if sock is not None and sock.fileno() not in seen:
                seen.add(sock.fileno())
                sockets.append(sock)
    return sockets


def missing_attributes() -> list[str]:
    """The private aiortc attributes of :data:`PRIVATE_ATTRIBUTES` that do not exist (ideally none).

    Builds a peer connection with one transceiver (no network: nothing is gathered), in a fresh
    event loop on a worker thread when called from a running loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_missing_async())
    result: list[list[str]] = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(_missing_async())))
    worker.start()
    worker.join()
    return result[0]


def check_aiortc() -> None:
    """Raise :class:`AiortcChanged` naming every private attribute the hooks need that is missing."""
    missing = missing_attributes()
    if missing:
        raise AiortcChanged("aiortc lacks " + ", ".join(missing) + "; install the pinned aiortc 1.16.0")

