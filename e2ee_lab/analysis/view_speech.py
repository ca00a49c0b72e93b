"""Each view's decode of a publisher's speech from the capture, and how well it matches what was sent.

:func:`view_speech` lays out, by the 20 ms chunk each frame carried (:class:`~e2ee_lab.analysis.views.Truth`),
the Opus frames (RFC 7587) a view of :func:`~e2ee_lab.analysis.views.analyze_views` holds: the
SFU's decode of what it received (the offline analysis, :func:`~e2ee_lab.analysis.offline.analyze`:
speech in dtls-srtp, noise from SFrame ciphertext in e2ee), or a receiver's decode of what the SFU
sent it, opened with the members' SFrame keys (RFC 9605 §4.4.3). :func:`speech_correlation`
scores it against the sent speech at the best Opus delay. The three-views figure
(:func:`e2ee_lab.analysis.plots.three_views`) draws both; Opus turns ciphertext into noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from e2ee_lab.analysis.offline import OPUS_DELAY, OPUS_DELAY_SLACK
from e2ee_lab.crypto.sframe import SFrameError
from e2ee_lab.media.codecs import DecodeError, OpusDecoder
from e2ee_lab.media.speech import FRAME_SAMPLES

if TYPE_CHECKING:
    from e2ee_lab.analysis.views import ThreeViews


def _lay_out(v: ThreeViews, frames, pcm_of) -> np.ndarray:
    """PCM of audio ``frames`` placed by the sent 20 ms chunk each carried; silence elsewhere."""
    truth = v.call.truth
    chunks = {}
    for index, row in frames.iterrows():
        origin = truth.origin(row.ssrc, row.timestamp)
        pcm = pcm_of(index, row)
        if origin is not None and origin[2] >= 0 and pcm is not None:
            chunks[origin[2]] = pcm[:FRAME_SAMPLES]
    out = np.zeros((max(chunks, default=-1) + 2) * FRAME_SAMPLES, np.int16)
    for i, pcm in chunks.items():
        out[i * FRAME_SAMPLES:i * FRAME_SAMPLES + len(pcm)] = pcm
    return out


def _receiver_pcm(v: ThreeViews, publisher: str) -> np.ndarray:
    """``publisher``'s speech as the first other participant decodes the frames the SFU sent it:
    the frames the receiver view opened (e2ee: SFrame with the members' keys), Opus-decoded;
    silence where the receiver could not open or decode a frame."""
    leg = next(n for n in v.call.names if n != publisher)
    got = v.receiver.frames
    opened = {(int(s), int(t)) for s, t in got[(got.leg == leg) & got.decrypted.astype(bool)]
              [["ssrc", "timestamp"]].itertuples(index=False)}
    f = v.frames("sfu")
    rows = f[(f.direction == "from_sfu") & (f.leg == leg) & (f.kind == "audio") & (f.publisher == publisher)]
    context = v.call.frame_keys.context() if v.mode == "e2ee" and v.call.frame_keys else None
    decoder = OpusDecoder()

    def decode(index, row):
        if (int(row.ssrc), int(row.timestamp)) not in opened:
            return None
        data = v.sfu.frame_data[index]
        try:
            return decoder.decode(context.unprotect(data) if context is not None else data)
        except (SFrameError, DecodeError):
            return None
    return _lay_out(v, rows, decode)


def view_speech(v: ThreeViews, view: str, publisher: str | None = None) -> np.ndarray | None:
    """``publisher``'s speech (48 kHz int16, 20 ms chunk ``i`` at sample ``960 i``) as ``view``
    decodes it from the capture: the SFU's Opus decode of the frames it received (speech in
    dtls-srtp, noise from SFrame ciphertext in e2ee), a receiver's decode of the frames the SFU sent
    it, or None for the wire (SRTP ciphertext, the analysis keeps no PCM of it)."""
    publisher = publisher or v.call.names[0]
    if view == "wire":
        return None
    if view == "receiver":
        return _receiver_pcm(v, publisher)
    f = v.sfu.frames
    rows = f[(f.direction == "to_sfu") & (f.ssrc == v.call.truth.ssrc_of(publisher, "audio"))]
    return _lay_out(v, rows, lambda index, _row: v.sfu.media.get(index))


def speech_correlation(sent: np.ndarray, got: np.ndarray | None) -> float:
    """Pearson correlation of ``got`` with ``sent`` at the best Opus delay (within
    :data:`~e2ee_lab.analysis.offline.OPUS_DELAY_SLACK` of ``OPUS_DELAY``); 0 for no or silent audio."""
    if got is None:
        return 0.0
    m = min(len(sent), len(got) - OPUS_DELAY - OPUS_DELAY_SLACK)
    if m < FRAME_SAMPLES:
        return 0.0
    a = sent[:m].astype(float) - sent[:m].mean()
    best = 0.0
    for lag in range(OPUS_DELAY - OPUS_DELAY_SLACK, OPUS_DELAY + OPUS_DELAY_SLACK + 1):
        g = got[lag:lag + m].astype(float)
        g -= g.mean()
        norm = float(np.linalg.norm(a) * np.linalg.norm(g))
        best = max(best, float(a @ g) / norm if norm else 0.0)
    return best
