"""What Janus's admin API shows about each stream: the metadata a production SFU keeps.

The admin API (``/admin`` on 127.0.0.1, every request carrying the run's ``admin_secret``) answers
``handle_info`` for a handle with Janus's whole state for that PeerConnection: the ICE agent
(local and remote candidates, the selected pair, when gathering and connectivity finished), DTLS
(role, fingerprints, the negotiated SRTP profile), and per media stream its SSRCs, codec, RTP/RTCP
counters (packets, bytes, NACKs, retransmissions), RTCP-derived statistics (loss, jitter, RTT,
link quality), the recording file, and for audio VideoRoom's current audio level and ``talking``
flag (read from the RFC 6464 header extension, which frame encryption leaves in clear).

:func:`handle_infos` fetches it for the call's handles; :func:`stream_table` flattens it to one
row per stream (columns in :data:`STREAM_COLUMNS`). Every field is read defensively: Janus's
answers are untrusted, and a missing field becomes None, never an exception.
"""

from __future__ import annotations

import secrets

import pandas as pd

from . import http
from .client import check_answer
from .config import JanusConfig

STREAM_COLUMNS = ("participant", "role", "mid", "kind", "codec", "selected_pair", "srtp_profile",
                  "dtls_role", "ice_ms", "dtls_ms", "ssrc", "ssrc_peer", "packets_in", "bytes_in",
                  "packets_out", "bytes_out", "nacks_in", "nacks_out", "retransmissions", "lost",
                  "lost_by_remote", "jitter_local", "jitter_remote", "rtt", "in_link_quality",
                  "audio_level_dbov", "talking", "recording", "e2ee")


async def admin_request(config: JanusConfig, path: str, payload: dict, *, timeout: float = 5.0) -> dict:
    """POST ``payload`` (with the admin secret and a transaction) to ``/admin{path}``.

    Raises:
        JanusAPIError: Janus answered with an error.  JanusProtocolError / JanusTimeout: see
            :mod:`e2ee_lab.janus.http`.
    """
    body = {**payload, "transaction": secrets.token_hex(8), "admin_secret": config.admin_secret}
    answer = await http.request_json(config.admin_url + path, body, timeout=timeout)
    return check_answer(answer, str(payload.get("janus")))


async def handle_infos(config: JanusConfig, handles: dict[tuple[str, str], tuple[int, int]]) -> dict:
    """``handle_info`` of each handle: ``{(participant, role): info}`` for ``{(participant, role):
    (session id, handle id)}``."""
    out = {}
    for key, (session, handle) in handles.items():
        answer = await admin_request(config, f"/{session}/{handle}", {"janus": "handle_info"})
        out[key] = answer.get("info") if isinstance(answer.get("info"), dict) else {}
    return out


def _get(obj, *path):
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


def _ms(later, earlier) -> float | None:
    if isinstance(later, int) and isinstance(earlier, int) and later >= earlier:
        return round((later - earlier) / 1000, 1)
    return None


def _plugin_streams(info: dict) -> dict[str, dict]:
    streams = _get(info, "plugin_specific", "streams")
    return {str(s.get("mid")): s for s in streams if isinstance(s, dict)} if isinstance(streams, list) else {}


def stream_rows(participant: str, role: str, info: dict) -> list[dict]:
    """One row per media stream of one handle's ``handle_info`` (:data:`STREAM_COLUMNS`)."""
    webrtc = info.get("webrtc") if isinstance(info.get("webrtc"), dict) else {}
    media = webrtc.get("media") if isinstance(webrtc.get("media"), dict) else {}
    plugin = _plugin_streams(info)
    leg = {"participant": participant, "role": role,
           "selected_pair": _get(webrtc, "ice", "selected-pair"),
           "srtp_profile": _get(webrtc, "dtls", "srtp-profile"), "dtls_role": _get(webrtc, "dtls", "dtls-role"),
           "ice_ms": _ms(_get(webrtc, "ice", "connected"), info.get("agent-started")),
           "dtls_ms": _ms(_get(webrtc, "dtls", "connected"), _get(webrtc, "dtls", "handshake-started")),
           "e2ee": _get(info, "flags", "e2ee")}
    rows = []
    for stream in media.values():
        if not isinstance(stream, dict):
            continue
        extra = plugin.get(str(stream.get("mid")), {})
        rows.append({**leg, "mid": stream.get("mid"), "kind": stream.get("type"),
                     "codec": _get(stream, "codecs", "codec"), "ssrc": _get(stream, "ssrc", "ssrc"),
                     "ssrc_peer": _get(stream, "ssrc", "ssrc-peer"),
                     "packets_in": _get(stream, "stats", "in", "packets"), "bytes_in": _get(stream, "stats", "in", "bytes"),
                     "packets_out": _get(stream, "stats", "out", "packets"),
                     "bytes_out": _get(stream, "stats", "out", "bytes"),
                     "nacks_in": _get(stream, "stats", "in", "nacks"), "nacks_out": _get(stream, "stats", "out", "nacks"),
                     "retransmissions": _get(stream, "stats", "in", "retransmissions"),
                     "lost": _get(stream, "rtcp", "main", "lost"),
                     "lost_by_remote": _get(stream, "rtcp", "main", "lost-by-remote"),
                     "jitter_local": _get(stream, "rtcp", "main", "jitter-local"),
                     "jitter_remote": _get(stream, "rtcp", "main", "jitter-remote"),
                     "rtt": _get(stream, "rtcp", "main", "rtt"),
                     "in_link_quality": _get(stream, "rtcp", "main", "in-link-quality"),
                     "audio_level_dbov": extra.get("audio-level-dBov"), "talking": extra.get("talking"),
                     "recording": extra.get("recording")})
    return rows


def stream_table(infos: dict) -> pd.DataFrame:
    """Every stream of every handle in ``infos`` (:func:`handle_infos`) as one DataFrame."""
    rows = [row for (participant, role), info in infos.items() for row in stream_rows(participant, role, info)]
    return pd.DataFrame(rows, columns=list(STREAM_COLUMNS))
