"""Transport layer: certificates, SRTP sessions, demux, DTLS records, the sans-I/O DTLS endpoint and
leg (wired together in memory), the key log, and real DTLS-SRTP legs over loopback UDP."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
import warnings

import pylibsrtp
import pytest
from aiortc.rtp import RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from e2ee_lab.transport import (
    DEFAULT_PROFILES,
    AuthenticationFailed,
    Certificate,
    ConnectionClosed,
    DTLSEndpoint,
    DTLSState,
    Fingerprint,
    FingerprintMismatch,
    HandshakeCompleted,
    HandshakeFailed,
    HandshakeFailure,
    HandshakeTimeout,
    InvalidState,
    KeyLogEntry,
    KeyLogError,
    LegConnection,
    MalformedFingerprint,
    MalformedPacket,
    MalformedRecord,
    NoSRTPProfile,
    PacketKind,
    ReplayDetected,
    RTCPReceived,
    RTPReceived,
    SRTPError,
    SRTPMasterKey,
    SRTPProfile,
    SRTPSession,
    check_loopback,
    classify,
    connect_leg,
    find_entry,
    is_rtcp,
    listen_leg,
    open_leg_pair,
    open_udp,
    read_keylog,
    receive_session,
    sessions_for,
    split_keying_material,
    write_keylog,
)
from e2ee_lab.transport import keylog
from e2ee_lab.transport.records import (
    EXTENSION_USE_SRTP,
    ContentType,
    DTLSRecord,
    find_client_hello,
    pack_datagrams,
    parse_records,
)

GCM = SRTPProfile.AEAD_AES_128_GCM
CM = SRTPProfile.AES_CM_128_HMAC_SHA1_80
BOTH = pytest.mark.parametrize("profile", [GCM, CM], ids=["gcm", "cm_sha1_80"])
CLIENT_ADDR, SERVER_ADDR = ("127.0.0.1", 40001), ("127.0.0.1", 40002)


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


def rtp(seq: int, size: int = 1200, ssrc: int = 0x1234) -> bytes:
    payload = bytes((seq + i) & 0xFF for i in range(size - 12))
    return RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000, ssrc=ssrc,
                     payload=payload).serialize()


def rtcp(ssrc: int = 0x1234) -> bytes:
    info = RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4)
    return bytes(RtcpSrPacket(ssrc=ssrc, sender_info=info)) + bytes(RtcpRrPacket(ssrc=ssrc))


def master_key(profile: SRTPProfile) -> SRTPMasterKey:
    return SRTPMasterKey(os.urandom(profile.key_length), os.urandom(profile.salt_length))


def srtp_pair(profile: SRTPProfile, **kw) -> tuple[SRTPSession, SRTPSession]:
    key = master_key(profile)
    return (SRTPSession(profile=profile, key=key, direction="outbound", **kw),
            SRTPSession(profile=profile, key=key, direction="inbound"))


# --- certificates and fingerprints ----------------------------------------------------------


def test_fingerprint_round_trips_through_its_sdp_form(certs):
    fp = certs[0].fingerprint()
    assert fp.algorithm == "sha-256" and len(fp.digest) == 32
    assert Fingerprint.parse(str(fp)) == fp
    assert Fingerprint.parse(fp.sdp) == fp
    assert Fingerprint.parse(str(fp).lower()) == fp
    assert str(fp).startswith("sha-256 ") and str(fp)[8:10] == fp.digest[:1].hex().upper()


def test_fingerprint_verify_accepts_own_certificate_and_raises_for_another(certs):
    certs[0].fingerprint().verify(certs[0].x509)
    certs[0].fingerprint("sha-512").verify(certs[0].x509)
    with pytest.raises(FingerprintMismatch):
        certs[0].fingerprint().verify(certs[1].x509)


@pytest.mark.parametrize("text", [
    "", "sha-256", "md5 AB:CD", "sha-256 ZZ:00", "sha-256 ABCD", "sha-256 AB:CD",
    "sha-256 " + ":".join(["AB"] * 33), "sha-1 " + ":".join(["AB"] * 20), "sha-256 AB: CD",
], ids=["empty", "no-value", "md5", "not-hex", "no-colons", "short", "long", "sha1",
        "three-fields"])
def test_malformed_fingerprints_raise_a_typed_value_error(text):
    with pytest.raises(MalformedFingerprint) as info:
        Fingerprint.parse(text)
    assert isinstance(info.value, ValueError) and info.value.reason == "dtls_malformed_fingerprint"


def test_generated_certificates_are_p256_and_distinct(certs):
    assert certs[0].private_key.curve.name == "secp256r1"
    assert certs[0].fingerprint() != certs[1].fingerprint()


# --- SRTP sessions --------------------------------------------------------------------------


@pytest.mark.parametrize("profile,pid,name,klen,slen,tag", [
    (GCM, 0x0007, b"SRTP_AEAD_AES_128_GCM", 16, 12, 16),
    (CM, 0x0001, b"SRTP_AES128_CM_SHA1_80", 16, 14, 10),
    (SRTPProfile.AEAD_AES_256_GCM, 0x0008, b"SRTP_AEAD_AES_256_GCM", 32, 12, 16),
], ids=["gcm", "cm_sha1_80", "gcm256"])
def test_profile_table_matches_rfc5764_and_rfc7714(profile, pid, name, klen, slen, tag):
    assert (profile.profile_id, profile.openssl_name) == (pid, name)
    assert (profile.key_length, profile.salt_length, profile.rtp_overhead) == (klen, slen, tag)
    assert profile.rtcp_overhead == tag + 4
    assert SRTPProfile.from_openssl_name(name) is profile


def test_unknown_openssl_profile_name_is_a_value_error():
    with pytest.raises(ValueError):
        SRTPProfile.from_openssl_name(b"SRTP_NULL_SHA1_80")


@BOTH
def test_srtp_round_trip_rtp_and_rtcp(profile):
    tx, rx = srtp_pair(profile)
    for seq in range(3):
        packet = rtp(seq)
        protected = tx.protect(packet)
        assert len(protected) == len(packet) + profile.rtp_overhead
        assert protected[:12] == packet[:12]  # the header stays clear
        assert protected[12:len(packet)] != packet[12:]  # the payload does not
        assert rx.unprotect(protected) == packet
    report = rtcp()
    protected = tx.protect_rtcp(report)
    assert len(protected) == len(report) + profile.rtcp_overhead
    assert rx.unprotect_rtcp(protected) == report


@BOTH
def test_libsrtp_rejects_replayed_rtp_and_rtcp(profile):
    tx, rx = srtp_pair(profile)
    packet, report = tx.protect(rtp(1)), tx.protect_rtcp(rtcp())
    rx.unprotect(packet)
    rx.unprotect_rtcp(report)
    with pytest.raises(ReplayDetected) as info:
        rx.unprotect(packet)
    assert info.value.reason == "srtp_replay"
    assert isinstance(info.value.__cause__, pylibsrtp.Error)
    with pytest.raises(ReplayDetected):
        rx.unprotect_rtcp(report)


def test_packet_older_than_the_replay_window_is_rejected():
    key = master_key(GCM)
    tx = SRTPSession(profile=GCM, key=key, direction="outbound")
    small = SRTPSession(profile=GCM, key=key, direction="inbound", window_size=64)
    default = SRTPSession(profile=GCM, key=key, direction="inbound")
    packets = [tx.protect(rtp(seq, size=100)) for seq in range(200)]
    for packet in packets[1:]:
        small.unprotect(packet)
        default.unprotect(packet)
    with pytest.raises(ReplayDetected):
        small.unprotect(packets[0])  # 199 behind a 64-packet window
    assert default.unprotect(packets[0]) == rtp(0, size=100)  # inside the 1024 default


@BOTH
@pytest.mark.parametrize("where", ["header", "payload", "tag"])
def test_tampering_with_any_part_fails_authentication(profile, where):
    tx, rx = srtp_pair(profile)
    protected = bytearray(tx.protect(rtp(7)))
    index = {"header": 5, "payload": 40, "tag": len(protected) - 1}[where]
    protected[index] ^= 0x01
    with pytest.raises(AuthenticationFailed) as info:
        rx.unprotect(bytes(protected))
    assert info.value.reason == "srtp_auth_failed"


@BOTH
def test_a_different_key_fails_authentication(profile):
    tx, _ = srtp_pair(profile)
    _, other_rx = srtp_pair(profile)
    with pytest.raises(AuthenticationFailed):
        other_rx.unprotect(tx.protect(rtp(1)))
    with pytest.raises(AuthenticationFailed):
        other_rx.unprotect_rtcp(tx.protect_rtcp(rtcp()))


def test_protecting_the_same_index_twice_needs_allow_repeat_tx():
    tx, _ = srtp_pair(GCM)
    tx.protect(rtp(1))
    with pytest.raises(ReplayDetected):
        tx.protect(rtp(1))
    repeat_tx, _ = srtp_pair(GCM, allow_repeat_tx=True)
    assert repeat_tx.protect(rtp(1)) == repeat_tx.protect(rtp(1))


@pytest.mark.parametrize("call,data,fragment", [
    ("protect", b"\x80" * 11, "11 bytes, need at least 12"),
    ("protect", b"\x80" * 1400, "at most 1356"),
    ("protect", b"\x40" + b"\x00" * 30, "version 1"),
    ("protect_rtcp", b"\x80\xc8\x00", "3 bytes, need at least 8"),
    ("unprotect", b"\x80" * 27, "27 bytes, need at least 28"),
    ("unprotect", b"\x80" * 1501, "at most 1500"),
    ("unprotect_rtcp", b"\x80\xc9" + b"\x00" * 20, "22 bytes, need at least 28"),
], ids=["short", "long", "version", "rtcp-short", "srtp-short", "srtp-long", "srtcp-short"])
def test_malformed_packets_raise_malformed_packet_with_byte_counts(call, data, fragment):
    tx, rx = srtp_pair(GCM)
    session = tx if call.startswith("protect") else rx
    with pytest.raises(MalformedPacket, match=fragment) as info:
        getattr(session, call)(data)
    assert info.value.reason == "srtp_malformed"


def test_bytes_bytearray_and_memoryview_agree_and_other_types_are_type_errors():
    key = master_key(GCM)
    outputs = []
    for kind in (bytes, bytearray, memoryview):
        tx = SRTPSession(profile=GCM, key=key, direction="outbound")
        outputs.append(tx.protect(kind(rtp(3))))
    assert outputs[0] == outputs[1] == outputs[2]
    rx = SRTPSession(profile=GCM, key=key, direction="inbound")
    assert rx.unprotect(memoryview(outputs[0])) == rtp(3)
    with pytest.raises(TypeError):
        rx.unprotect("not bytes")


@pytest.mark.parametrize("kwargs,message", [
    ({"key": SRTPMasterKey(b"k" * 16, b"s" * 14), "direction": "outbound"}, "12-byte salt"),
    ({"key": SRTPMasterKey(b"k" * 15, b"s" * 12), "direction": "outbound"}, "16-byte key"),
    ({"key": SRTPMasterKey(b"k" * 16, b"s" * 12), "direction": "sideways"}, "direction"),
    ({"key": SRTPMasterKey(b"k" * 16, b"s" * 12), "direction": "inbound", "window_size": 10},
     "window_size"),
], ids=["salt", "key", "direction", "window"])
def test_session_constructor_checks_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SRTPSession(profile=GCM, **kwargs)


def test_sessions_refuse_the_wrong_direction():
    tx, rx = srtp_pair(GCM)
    with pytest.raises(ValueError, match="outbound"):
        rx.protect(rtp(1))
    with pytest.raises(ValueError, match="inbound"):
        tx.unprotect(tx.protect(rtp(1)))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1600), rtcp_call=st.booleans())
def test_random_bytes_never_unprotect_and_raise_only_srtp_errors(data, rtcp_call):
    _, rx = srtp_pair(CM)
    with pytest.raises(SRTPError):
        (rx.unprotect_rtcp if rtcp_call else rx.unprotect)(data)


# --- demultiplexing -------------------------------------------------------------------------


@pytest.mark.parametrize("data,kind", [
    (b"\x00\x01", PacketKind.STUN), (b"\x03", PacketKind.STUN), (b"\x04", PacketKind.UNKNOWN),
    (b"\x10", PacketKind.ZRTP), (b"\x13", PacketKind.ZRTP),
    (b"\x14", PacketKind.DTLS), (b"\x16\xfe\xfd", PacketKind.DTLS), (b"\x3f", PacketKind.DTLS),
    (b"\x40", PacketKind.TURN_CHANNEL), (b"\x4f", PacketKind.TURN_CHANNEL),
    (b"\x50", PacketKind.UNKNOWN), (b"\x7f\x00", PacketKind.UNKNOWN),
    (b"\x80\x60", PacketKind.RTP), (b"\x80\xe0", PacketKind.RTP), (b"\x90\x6f", PacketKind.RTP),
    (b"\x80\xc0", PacketKind.RTCP), (b"\x80\xc8", PacketKind.RTCP), (b"\x81\xc9", PacketKind.RTCP),
    (b"\x80\xdf", PacketKind.RTCP), (b"\xbf\xcd", PacketKind.RTCP),
    (b"\x80\xbf", PacketKind.RTP), (b"\xc0\xc8", PacketKind.UNKNOWN),
    (b"\x80", PacketKind.UNKNOWN), (b"", PacketKind.UNKNOWN), (b"\xff", PacketKind.UNKNOWN),
])
def test_classify_follows_rfc7983_and_rfc5761(data, kind):
    assert classify(data) is kind
    assert is_rtcp(data) == (kind is PacketKind.RTCP)


@given(st.binary(max_size=64))
def test_classify_is_total(data):
    assert isinstance(classify(data), PacketKind)


# --- DTLS records ---------------------------------------------------------------------------


def test_records_round_trip_and_pack_into_mtu_sized_datagrams():
    records = [DTLSRecord(ContentType.HANDSHAKE, 0xFEFD, 0, n, bytes(300)) for n in range(5)]
    datagrams = pack_datagrams(records, 700)
    assert [len(d) for d in datagrams] == [626, 626, 313]
    assert [r for d in datagrams for r in parse_records(d)] == records


@pytest.mark.parametrize("data,fragment", [
    (b"", "empty"), (b"\x16\xfe\xfd" + bytes(5), "header needs 13"),
    (b"\x16\xfe\xfd" + bytes(8) + b"\x00\x10" + bytes(4), "length 16, only 4"),
    (b"\x18\xfe\xfd" + bytes(10), "content type 24"),
    (b"\x16\x03\x03" + bytes(10), "version 0x0303"),
])
def test_malformed_records_raise_malformed_record(data, fragment):
    with pytest.raises(MalformedRecord, match=fragment):
        parse_records(data)


@given(st.binary(max_size=200))
def test_parse_records_raises_only_malformed_record(data):
    try:
        parse_records(data)
    except MalformedRecord:
        pass


# --- DTLS endpoints in memory ---------------------------------------------------------------


def make_pair(certs, *, client_fp=None, server_fp=None, client_profiles=DEFAULT_PROFILES,
              server_profiles=DEFAULT_PROFILES) -> tuple[DTLSEndpoint, DTLSEndpoint]:
    client_cert, server_cert = certs
    client = DTLSEndpoint(role="client", certificate=client_cert, profiles=client_profiles,
                          remote_fingerprint=client_fp or server_cert.fingerprint())
    server = DTLSEndpoint(role="server", certificate=server_cert, profiles=server_profiles,
                          remote_fingerprint=server_fp or str(client_cert.fingerprint()))
    return client, server


def run_handshake(client, server, now: float = 0.0, tap=None) -> tuple[list, list]:
    """Start both, shuttle datagrams until quiet; return each side's events."""
    client.start(now)
    server.start(now)
    for _ in range(10):
        to_server, to_client = client.datagrams_to_send(now), []
        for datagram in to_server:
            if tap:
                tap(datagram)
            server.receive_datagram(datagram, now)
        to_client = server.datagrams_to_send(now)
        for datagram in to_client:
            client.receive_datagram(datagram, now)
        if not to_server and not to_client:
            break
    return drain(client), drain(server)


def drain(endpoint) -> list:
    events = []
    while (event := endpoint.next_event()) is not None:
        events.append(event)
    return events


def test_in_memory_handshake_exports_matching_keys(certs):
    client, server = make_pair(certs)
    client_events, server_events = run_handshake(client, server)
    assert [type(e) for e in client_events] == [HandshakeCompleted]
    assert [type(e) for e in server_events] == [HandshakeCompleted]
    c, s = client_events[0], server_events[0]
    assert (c.role, s.role) == ("client", "server")
    assert c.profile is s.profile is GCM and c.version == s.version == "DTLSv1.2"
    assert c.local_key == s.remote_key and c.remote_key == s.local_key
    assert c.client_write_key == s.client_write_key and c.server_write_key == s.server_write_key
    assert c.local_key != c.remote_key
    assert c.peer_fingerprint == certs[1].fingerprint()
    assert s.peer_fingerprint == certs[0].fingerprint()
    assert "ECDHE-ECDSA" in c.cipher
    assert client.state is server.state is DTLSState.CONNECTED
    assert len(c.local_key.key) == 16 and len(c.local_key.salt) == 12


def test_exported_keys_follow_the_rfc5764_layout(certs):
    client, server = make_pair(certs)
    keys = run_handshake(client, server)[0][0]
    material = client._ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", 56)
    assert material[:16] == keys.client_write_key.key
    assert material[16:32] == keys.server_write_key.key
    assert material[32:44] == keys.client_write_key.salt
    assert material[44:56] == keys.server_write_key.salt


def test_split_keying_material_layout_and_length_check():
    client, server = split_keying_material(CM, bytes(range(60)))
    assert client == SRTPMasterKey(bytes(range(0, 16)), bytes(range(32, 46)))
    assert server == SRTPMasterKey(bytes(range(16, 32)), bytes(range(46, 60)))
    with pytest.raises(ValueError):
        split_keying_material(GCM, bytes(60))


def test_client_hello_offers_use_srtp_in_preference_order(certs):
    hellos = []
    client, server = make_pair(certs)
    run_handshake(client, server, tap=hellos.append)
    first = hellos[0]
    assert b"\x00\x0e\x00\x07\x00\x04\x00\x07\x00\x01\x00" in first  # type 0x000e, len 7
    hello = find_client_hello(first)
    assert EXTENSION_USE_SRTP in hello.extensions
    assert hello.srtp_profile_ids() == (0x0007, 0x0001)


def test_client_hello_lists_every_configured_profile(certs):
    hellos = []
    order = [SRTPProfile.AEAD_AES_256_GCM, CM, GCM]
    client, server = make_pair(certs, client_profiles=order)
    events = run_handshake(client, server, tap=hellos.append)
    assert find_client_hello(hellos[0]).srtp_profile_ids() == (0x0008, 0x0001, 0x0007)
    assert events[0][0].profile is GCM  # the server's preference wins


@pytest.mark.parametrize("client_profiles,server_profiles,expected", [
    ([GCM, CM], [CM, GCM], CM), ([CM], [GCM, CM], CM), ([GCM, CM], [GCM], GCM),
], ids=["server-prefers-cm", "client-offers-cm", "server-only-gcm"])
def test_profile_selection(certs, client_profiles, server_profiles, expected):
    client, server = make_pair(certs, client_profiles=client_profiles,
                               server_profiles=server_profiles)
    c_events, s_events = run_handshake(client, server)
    assert c_events[0].profile is s_events[0].profile is expected
    assert len(c_events[0].local_key.salt) == expected.salt_length


def test_no_common_profile_fails_both_sides(certs):
    client, server = make_pair(certs, client_profiles=[SRTPProfile.AEAD_AES_256_GCM],
                               server_profiles=[CM])
    c_events, s_events = run_handshake(client, server)
    for events, endpoint in ((c_events, client), (s_events, server)):
        assert [type(e) for e in events] == [HandshakeFailed]
        assert isinstance(events[0].error, NoSRTPProfile)
        assert endpoint.state is DTLSState.FAILED and endpoint.keys is None


def test_wrong_server_fingerprint_aborts_the_client_before_any_key(certs):
    intruder = Certificate.generate().fingerprint()
    client, server = make_pair(certs, client_fp=intruder)
    c_events, s_events = run_handshake(client, server)
    assert [type(e) for e in c_events] == [HandshakeFailed]
    assert isinstance(c_events[0].error, FingerprintMismatch)
    assert c_events[0].error.reason == "dtls_fingerprint_mismatch"
    assert [type(e) for e in s_events] == [HandshakeFailed]  # it received the alert
    assert isinstance(s_events[0].error, HandshakeFailure)
    assert client.keys is None and server.keys is None


def test_wrong_client_fingerprint_aborts_the_server(certs):
    client, server = make_pair(certs, server_fp=Certificate.generate().fingerprint())
    c_events, s_events = run_handshake(client, server)
    assert isinstance(s_events[0].error, FingerprintMismatch)
    assert isinstance(c_events[0].error, HandshakeFailure)
    assert server.keys is None and client.keys is None


def test_keys_differ_per_leg_and_per_run_with_the_same_certificates(certs):
    keys = []
    for _ in range(3):
        client, server = make_pair(certs)
        keys.append(run_handshake(client, server)[0][0])
    material = {k.local_key for k in keys} | {k.remote_key for k in keys}
    assert len(material) == 6


def test_garbage_and_truncated_records_are_counted_and_the_handshake_survives(certs):
    client, server = make_pair(certs)
    client.start(0.0)
    server.start(0.0)
    hello = client.datagrams_to_send(0.0)[0]
    server.receive_datagram(hello[:-7], 0.0)  # truncated record
    server.receive_datagram(os.urandom(40), 0.0)
    server.receive_datagram(b"\x16\xfe\xfd\x00", 0.0)
    assert server.dropped["dtls_malformed_record"] >= 2
    assert server.datagrams_to_send(0.0) == []
    server.receive_datagram(hello, 0.0)
    flight = server.datagrams_to_send(0.0)
    client.receive_datagram(flight[0][: len(flight[0]) // 2], 0.0)
    assert client.dropped["dtls_malformed_record"] == 1
    for datagram in flight:
        client.receive_datagram(datagram, 0.0)
    for datagram in client.datagrams_to_send(0.0):
        server.receive_datagram(datagram, 0.0)
    for datagram in server.datagrams_to_send(0.0):
        client.receive_datagram(datagram, 0.0)
    assert client.state is server.state is DTLSState.CONNECTED


def test_lost_client_hello_is_retransmitted_on_the_timer(certs):
    client, server = make_pair(certs)
    start = time.monotonic()
    client.start(start)
    server.start(start)
    lost = client.datagrams_to_send(start)
    timer = client.get_timer()
    assert lost and timer is not None and 0.5 <= timer - start <= 1.0
    client.handle_timer(start)  # not due yet: nothing happens
    assert client.datagrams_to_send(start) == []
    time.sleep(max(0.0, timer - time.monotonic()) + 0.05)  # OpenSSL runs its own clock
    client.handle_timer(time.monotonic())
    resent = client.datagrams_to_send(time.monotonic())
    assert len(resent) == 1
    assert find_client_hello(resent[0]).srtp_profile_ids() == (0x0007, 0x0001)
    assert client.get_timer() - time.monotonic() > 1.0  # doubled backoff
    server.receive_datagram(resent[0], time.monotonic())
    for datagram in server.datagrams_to_send(0.0):
        client.receive_datagram(datagram, 0.0)
    for datagram in client.datagrams_to_send(0.0):
        server.receive_datagram(datagram, 0.0)
    for datagram in server.datagrams_to_send(0.0):
        client.receive_datagram(datagram, 0.0)
    assert client.state is server.state is DTLSState.CONNECTED


def test_invalid_calls_raise_invalid_state(certs):
    client, _ = make_pair(certs)
    client.start(0.0)
    with pytest.raises(InvalidState, match="start"):
        client.start(0.0)
    with pytest.raises(ValueError):
        DTLSEndpoint(role="peer", certificate=certs[0], remote_fingerprint=certs[1].fingerprint())
    with pytest.raises(ValueError):
        DTLSEndpoint(role="client", certificate=certs[0], remote_fingerprint="sha-256 00")


def test_close_sends_close_notify_and_the_peer_reports_it(certs):
    client, server = make_pair(certs)
    run_handshake(client, server)
    client.close(1.0)
    assert drain(client) == [ConnectionClosed(by_peer=False)]
    for datagram in client.datagrams_to_send(1.0):
        server.receive_datagram(datagram, 1.0)
    assert drain(server) == [ConnectionClosed(by_peer=True)]
    assert server.state is DTLSState.CLOSED
    server.receive_datagram(b"\x15\xfe\xfd" + bytes(10), 2.0)
    assert server.dropped["dtls_not_accepting"] == 1


# --- a whole leg in memory ------------------------------------------------------------------


def leg_pair(certs, **kw) -> tuple[LegConnection, LegConnection]:
    client_cert, server_cert = certs
    client = LegConnection(role="client", certificate=client_cert, remote_addr=SERVER_ADDR,
                           remote_fingerprint=server_cert.fingerprint(), **kw)
    server = LegConnection(role="server", certificate=server_cert,
                           remote_fingerprint=client_cert.fingerprint(), **kw)
    client.start(0.0)
    server.start(0.0)
    return client, server


def shuttle(client: LegConnection, server: LegConnection, now: float = 0.0) -> None:
    for _ in range(10):
        moved = 0
        for src, dst, src_addr in ((client, server, CLIENT_ADDR), (server, client, SERVER_ADDR)):
            for datagram, addr in src.datagrams_to_send(now):
                assert addr == (SERVER_ADDR if src is client else CLIENT_ADDR)
                dst.receive_datagram(datagram, src_addr, now)
                moved += 1
        if not moved:
            return


@BOTH
def test_leg_carries_rtp_and_rtcp_both_ways_and_drops_replays(certs, profile):
    client, server = leg_pair(certs, profiles=[profile])
    shuttle(client, server)
    assert [type(e) for e in drain(client)] == [HandshakeCompleted]
    assert [type(e) for e in drain(server)] == [HandshakeCompleted]
    assert server.remote_addr == CLIENT_ADDR
    client.send_rtp(rtp(1))
    client.send_rtcp(rtcp())
    server.send_rtp(rtp(2, ssrc=99))
    wire = client.datagrams_to_send(1.0)
    for datagram, _ in wire:
        server.receive_datagram(datagram, CLIENT_ADDR, 1.0)
    shuttle(client, server, 1.0)
    got = drain(server)
    assert got == [RTPReceived(rtp(1), 1.0, 1200 + profile.rtp_overhead),
                   RTCPReceived(rtcp(), 1.0, len(rtcp()) + profile.rtcp_overhead)]
    assert [e.data for e in drain(client)] == [rtp(2, ssrc=99)]
    for datagram, _ in wire:  # replay both packets
        server.receive_datagram(datagram, CLIENT_ADDR, 2.0)
    assert drain(server) == [] and server.dropped["srtp_replay"] == 2


def test_leg_counts_forged_foreign_and_early_packets(certs):
    client, server = leg_pair(certs)
    server.receive_datagram(b"\x00\x01\x00\x00" + bytes(16), CLIENT_ADDR, 0.0)  # STUN first
    assert server.remote_addr is None and server.dropped["unexpected_stun"] == 1
    server.receive_datagram(rtp(1), CLIENT_ADDR, 0.0)
    shuttle(client, server)
    forged = bytearray(rtp(5) + bytes(16))
    server.receive_datagram(bytes(forged), CLIENT_ADDR, 1.0)
    server.receive_datagram(rtp(6) + bytes(16), ("127.0.0.1", 9), 1.0)
    server.receive_datagram(b"\x55garbage", CLIENT_ADDR, 1.0)
    assert server.dropped == {"unexpected_stun": 1, "srtp_before_keys": 1, "srtp_auth_failed": 1,
                              "unexpected_source": 1, "unexpected_unknown": 1}
    assert [type(e) for e in drain(server)] == [HandshakeCompleted]


def test_leg_refuses_to_send_before_the_handshake(certs):
    client, _ = leg_pair(certs)
    with pytest.raises(InvalidState, match="send_rtp"):
        client.send_rtp(rtp(1))
    with pytest.raises(ValueError):
        LegConnection(role="client", certificate=certs[0],
                      remote_fingerprint=certs[1].fingerprint())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_leg_never_raises_on_arbitrary_datagrams(certs, datagrams):
    client, server = leg_pair(certs)
    for datagram in datagrams:
        server.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    shuttle(client, server)
    for datagram in datagrams:
        server.receive_datagram(datagram, CLIENT_ADDR, 1.0)
        client.receive_datagram(datagram, SERVER_ADDR, 1.0)
    assert server.state in set(DTLSState)


# --- key log --------------------------------------------------------------------------------


def connected_entry(certs, profile=GCM) -> tuple[KeyLogEntry, LegConnection, LegConnection]:
    client, server = leg_pair(certs, profiles=[profile])
    shuttle(client, server)
    entry = KeyLogEntry.from_handshake("alice", server.keys, local_addr=SERVER_ADDR,
                                       remote_addr=CLIENT_ADDR)
    return entry, client, server


@BOTH
def test_keylog_round_trips_and_decrypts_both_directions(certs, tmp_path, profile):
    entry, client, server = connected_entry(certs, profile)
    assert entry == KeyLogEntry.from_handshake("alice", client.keys, local_addr=CLIENT_ADDR,
                                               remote_addr=SERVER_ADDR)
    path = tmp_path / "sfu-keys.json"
    write_keylog(path, [entry])
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    body = json.loads(path.read_text())
    assert body["legs"][0]["client"] == {"ip": "127.0.0.1", "port": 40001}
    assert body["legs"][0]["server_write"]["master_salt"] == server.keys.local_key.salt.hex()
    (loaded,) = read_keylog(path)
    assert loaded == entry
    client.send_rtp(rtp(1))
    server.send_rtp(rtp(2))
    up, down = client.datagrams_to_send(1.0)[0][0], server.datagrams_to_send(1.0)[0][0]
    assert receive_session(loaded, sender=CLIENT_ADDR).unprotect(up) == rtp(1)
    assert receive_session(loaded, sender=SERVER_ADDR).unprotect(down) == rtp(2)
    with pytest.raises(AuthenticationFailed):
        receive_session(loaded, sender=SERVER_ADDR).unprotect(up)
    assert find_entry([loaded], SERVER_ADDR, CLIENT_ADDR) is loaded
    assert find_entry([loaded], SERVER_ADDR, ("127.0.0.1", 5)) is None


def test_keylog_sessions_for_a_live_endpoint(certs):
    entry, client, _ = connected_entry(certs)
    pair = sessions_for(entry, local=SERVER_ADDR)
    client.send_rtp(rtp(4))
    assert pair.rx.unprotect(client.datagrams_to_send(1.0)[0][0]) == rtp(4)
    with pytest.raises(KeyLogError):
        sessions_for(entry, local=("127.0.0.1", 7))
    with pytest.raises(KeyLogError):
        entry.write_key_of(("127.0.0.1", 7))


def _mutate(obj: dict, path: tuple, value) -> dict:
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


@pytest.mark.parametrize("path,value", [
    (("format",), "sslkeylog"), (("version",), 2), (("legs",), {}),
    (("legs", 0, "profile"), "NULL"), (("legs", 0, "client", "port"), 0),
    (("legs", 0, "client", "ip"), "localhost"), (("legs", 0, "server", "ip"), 2130706433),
    (("legs", 0, "client_write", "master_key"), "zz"),
    (("legs", 0, "client_write", "master_key"), "00" * 15),
    (("legs", 0, "server_write"), KeyError), (("legs", 0), "alice"),
], ids=["format", "version", "legs", "profile", "port", "hostname", "int-ip", "hex", "key-length",
        "missing", "not-object"])
def test_malformed_keylogs_raise_keylog_error(certs, path, value):
    entry, _, _ = connected_entry(certs)
    text = json.dumps(_mutate(json.loads(keylog.dumps([entry])), path, value))
    with pytest.raises(KeyLogError):
        keylog.loads(text)


def test_keylog_that_is_not_json_raises_keylog_error(tmp_path):
    with pytest.raises(KeyLogError, match="not JSON"):
        keylog.loads("{legs: ")
    binary = tmp_path / "capture.pcap"
    binary.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))  # a pcap passed where the key log goes
    with pytest.raises(KeyLogError, match="not UTF-8"):
        keylog.read_keylog(binary)


# --- real loopback UDP ----------------------------------------------------------------------


def run_async(coro_factory):
    """Run a coroutine in a fresh loop; fail on leaked tasks or unclosed sockets."""
    async def guarded():
        result = await coro_factory()
        await asyncio.sleep(0)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, f"leaked tasks: {others}"
        return result

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = asyncio.run(guarded())
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, [str(w.message) for w in leaks]
    return result


async def close_all(*legs):
    for leg in legs:
        leg.close()
    for leg in legs:
        await leg.wait_closed()
        assert leg.transport.is_closing()


@pytest.mark.parametrize("address", [("127.0.0.1", 0), ("127.0.0.2", 5000), ("127.255.0.1", 1)])
def test_check_loopback_accepts_ipv4_loopback(address):
    assert check_loopback(address) == address


@pytest.mark.parametrize("address", [
    ("10.0.0.1", 5000), ("0.0.0.0", 0), ("8.8.8.8", 53), ("localhost", 5000), ("::1", 5000),
    ("127.0.0.1", 70000), ("127.0.0.1",),
])
def test_check_loopback_refuses_everything_else(address):
    with pytest.raises(ValueError):
        check_loopback(address)


def test_every_socket_asks_for_a_receive_buffer_that_holds_a_burst():
    from pathlib import Path
    import socket

    from e2ee_lab.transport.udp import RECEIVE_BUFFER

    async def scenario():
        transport, _ = await open_udp(asyncio.DatagramProtocol)
        try:
            return transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            transport.close()

    ceiling = int(Path("/proc/sys/net/core/rmem_max").read_text())  # Linux reports twice what it grants
    assert run_async(scenario) >= min(RECEIVE_BUFFER, ceiling)


def test_sockets_and_legs_refuse_non_loopback_addresses(certs):
    async def scenario():
        with pytest.raises(ValueError):
            await open_udp(asyncio.DatagramProtocol, local_addr=("0.0.0.0", 0))
        with pytest.raises(ValueError):
            await connect_leg(("192.0.2.1", 5000), certificate=certs[0],
                              remote_fingerprint=certs[1].fingerprint())
        with pytest.raises(ValueError):
            await listen_leg(certificate=certs[1], remote_fingerprint=certs[0].fingerprint(),
                             remote_addr=("203.0.113.5", 1))

    run_async(scenario)


@BOTH
def test_udp_legs_handshake_and_carry_srtp_both_ways(certs, profile):
    async def scenario():
        client, server = await open_leg_pair("alice", client_certificate=certs[0],
                                             server_certificate=certs[1], server_profiles=[profile])
        assert client.local_addr[0] == server.local_addr[0] == "127.0.0.1"
        assert client.remote_addr == server.local_addr and server.remote_addr == client.local_addr
        assert client.keys.profile is server.keys.profile is profile
        assert client.keys.local_key == server.keys.remote_key
        assert client.keys.remote_key == server.keys.local_key
        assert client.keylog_entry() == server.keylog_entry()
        for seq in range(5):
            client.send_rtp(rtp(seq))
        client.send_rtcp(rtcp())
        server.send_rtp(rtp(9, ssrc=7))
        received = [await asyncio.wait_for(server.recv(), 2) for _ in range(6)]
        assert [e.data for e in received] == [rtp(s) for s in range(5)] + [rtcp()]
        assert (await asyncio.wait_for(client.recv(), 2)).data == rtp(9, ssrc=7)
        await close_all(client, server)
        assert await server.recv() is None

    run_async(scenario)


def test_udp_replayed_and_foreign_datagrams_are_dropped(certs):
    async def scenario():
        client, server = await open_leg_pair(client_certificate=certs[0],
                                             server_certificate=certs[1])
        now = asyncio.get_running_loop().time()
        client.connection.send_rtp(rtp(1))
        (datagram, addr), = client.connection.datagrams_to_send(now)
        for _ in range(3):
            client.transport.sendto(datagram, addr)
        intruder, _ = await open_udp(asyncio.DatagramProtocol)
        intruder.sendto(datagram, server.local_addr)
        assert (await asyncio.wait_for(server.recv(), 2)).data == rtp(1)
        for _ in range(50):
            if server.dropped["srtp_replay"] == 2 and server.dropped["unexpected_source"] == 1:
                break
            await asyncio.sleep(0.01)
        assert server.dropped == {"srtp_replay": 2, "unexpected_source": 1}
        intruder.close()
        await close_all(client, server)

    run_async(scenario)


def test_udp_keys_differ_per_leg(certs):
    async def scenario():
        legs = [await open_leg_pair(n, client_certificate=certs[0], server_certificate=certs[1])
                for n in ("alice", "bob")]
        keys = {leg.keys.local_key for pair in legs for leg in pair}
        await close_all(*(leg for pair in legs for leg in pair))
        return keys

    assert len(run_async(scenario)) == 4


def test_udp_fingerprint_mismatch_raises_and_closes(certs):
    async def scenario():
        server = await listen_leg(certificate=certs[1], remote_fingerprint=certs[0].fingerprint())
        with pytest.raises(FingerprintMismatch):
            await connect_leg(server.local_addr, certificate=certs[0],
                              remote_fingerprint=Certificate.generate().fingerprint())
        with pytest.raises(HandshakeFailure):
            await server.handshake(2)
        with pytest.raises(InvalidState):
            server.keylog_entry()
        await close_all(server)

    run_async(scenario)


def test_udp_handshake_timeout_when_nobody_answers(certs):
    async def scenario():
        silent, _ = await open_udp(asyncio.DatagramProtocol)
        port = silent.get_extra_info("sockname")[1]
        with pytest.raises(HandshakeTimeout):
            await connect_leg(("127.0.0.1", port), certificate=certs[0],
                              remote_fingerprint=certs[1].fingerprint(), timeout=0.3)
        silent.close()

    run_async(scenario)


def test_udp_on_media_callback_receives_packets(certs):
    async def scenario():
        got = []
        server = await listen_leg(certificate=certs[1], remote_fingerprint=certs[0].fingerprint(),
                                  on_media=lambda leg, event: got.append((leg.name, event.data)),
                                  name="sfu-side")
        client = await connect_leg(server.local_addr, certificate=certs[0],
                                   remote_fingerprint=certs[1].fingerprint())
        await server.handshake()
        client.send_rtp(rtp(3))
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [("sfu-side", rtp(3))]
        await close_all(client, server)

    run_async(scenario)


class LossyRelay(asyncio.DatagramProtocol):
    """Forwards client <-> server on loopback and drops the server's n-th datagram."""

    def __init__(self, server_addr, drop_server_datagram: int) -> None:
        self.server_addr, self.drop = server_addr, drop_server_datagram
        self.client_addr, self.from_server, self.dropped = None, 0, []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if addr != self.server_addr:
            self.client_addr = addr
            self.transport.sendto(data, self.server_addr)
            return
        self.from_server += 1
        if self.from_server == self.drop:
            self.dropped.append(data)
        else:
            self.transport.sendto(data, self.client_addr)


def test_udp_handshake_recovers_from_a_lost_final_flight(certs):
    async def scenario():
        server = await listen_leg(certificate=certs[1], remote_fingerprint=certs[0].fingerprint())
        relay_transport, relay = await open_udp(lambda: LossyRelay(server.local_addr, 2))
        relay_addr = relay_transport.get_extra_info("sockname")[:2]
        client = await connect_leg(relay_addr, certificate=certs[0],
                                   remote_fingerprint=certs[1].fingerprint(), timeout=4)
        assert relay.dropped and parse_records(relay.dropped[0])[-1].epoch == 1  # its Finished
        assert relay.from_server == 3  # the server answered the client's retransmission
        assert client.keys.local_key == server.keys.remote_key
        client.send_rtp(rtp(1))
        assert (await asyncio.wait_for(server.recv(), 2)).data == rtp(1)
        relay_transport.close()
        await close_all(client, server)

    run_async(scenario)
