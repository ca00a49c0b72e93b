"""Figures of the lab: one function per figure, each returning a matplotlib Figure.

The functions live in one module per subject (:mod:`.call`, :mod:`.capture`, :mod:`.keys`,
:mod:`.threats`, :mod:`.bench`, :mod:`.production`) and are all importable from here.

Notebooks display the returned figure and ``make run`` saves it under ``reports/``. A figure function
only draws: it takes results (DataFrames or result records) and never runs a call itself.

Figures:
    overhead_figure: SFrame header + tag in % of the payload per cipher suite, for audio and video
    frames (notebook 03; RFC 9605 Appendix B, data from :func:`e2ee_lab.labs.sframe.overhead_table`).
    call_pictures: per call mode, the picture a publisher sent, what each participant decoded and
    what the SFU decoded (notebook 01; data from a :class:`e2ee_lab.call.CallResult` per mode).
    sfu_picture: the last picture of a publisher the SFU decoded, large enough to read (notebook 01).
    sfu_speech: a publisher's speech as sent and as the SFU decoded it, waveform and spectrogram
    (notebook 01).
    key_timeline: who can decrypt which frames across joins, leaves and rekeys (notebook 04;
    sender keys and epochs of RFC 9605 §5.1, data from :func:`e2ee_lab.crypto.keys.timeline.simulate_timeline`).
    transform_overhead: bytes each frame transform adds per frame, and as % of each medium's bit
    rate (benchmarks, :func:`e2ee_lab.bench.bench_transforms`).
    transform_cpu: µs per frame of each transform against frame size, with the bare AES-GCM call
    and the AES-GCM bulk-rate ceiling (benchmarks, :func:`e2ee_lab.bench.bench_transforms`).
    pipeline_stages: stacked µs per frame per pipeline stage for each medium and mode (benchmarks,
    :func:`e2ee_lab.bench.bench_pipeline`).
    sfu_capacity: forwarded SRTP packets per second per core and µs per forwarded packet by room
    size, dtls-srtp vs e2ee vs the bare forwarder (notebook 08; :func:`e2ee_lab.bench.bench_sfu`).
    call_envelope: whole calls by room size: share of frames in time and verified, CPU-seconds per
    participant-second, real time or not (:func:`e2ee_lab.bench.bench_call`).
    three_views: per call mode, a publisher's video frame as the wire (no keys), the SFU (leg keys)
    and a receiver (frame keys) read it from the captured packets, ciphertext drawn as noise, and
    under each view the speech it decodes (Opus turns e2ee ciphertext into noise) (notebook 02, the README's headline; data from :func:`e2ee_lab.analysis.views.analyze_views`).
    payload_bytes: per mode, the byte-value histogram of the video payloads and the entropy of each
    RTP payload over time: compressed media is high-entropy too (notebook 02).
    frame_metadata: what the wire shows without keys in both modes: video frame sizes and times,
    and the RFC 6464 audio level (notebook 02).
    decodable_share: share of decodable video and speech frames per view and mode (notebook 02).
    nonce_reuse_pictures: Bob's camera, C_A ⊕ C_B as the SFU computes it, and Bob's picture read
    from it with a known frame (notebook 07; :func:`e2ee_lab.labs.pitfalls.video_nonce_reuse`).
    short_tag_attempts: attempts per brute-force forgery against 1- and 2-byte tags vs 2^(8·Nt),
    and the time to one forgery extrapolated per tag length (notebook 07, RFC 9605 §7.5).
    attack_matrix: attack × mode heat map (a column more for naive members) of what receivers did
    with a malicious SFU's attacked frames: displayed, rejected (and by which check), not
    preventable, or read by the SFU (notebook 05; data from
    :func:`e2ee_lab.attacks.runner.attack_matrix`).
    speaking_timelines: per participant, true speaking vs inferred from the RFC 6464 audio level vs
    inferred from packet sizes, and the SFrame body sizes with the threshold (notebook 06; data
    from :func:`e2ee_lab.analysis.leakage.speaking_timeline`).
    video_frame_sizes: encrypted video frame sizes over time with the key frames and the SFU's
    size-based guesses (notebook 06; :func:`e2ee_lab.analysis.leakage.video_frames`).
    capture_analysis: one capture as the SFU (key log) or the wire reads it: last decoded picture
    per publisher, frame sizes, payload entropy (``e2ee-lab analyze``; :mod:`e2ee_lab.analysis.offline`).
    recording_playback: a publisher's picture as sent and as a production SFU's own recording plays
    it back per mode, and each publisher's recorded speech correlated with what was said (notebook
    11; data from :mod:`e2ee_lab.janus.recording`).
    sfu_cpu: µs of CPU per forwarded packet and packets per second per core, Janus and the lab's SFU
    on the same room (notebook 11; :func:`e2ee_lab.janus.capacity.compare_sfus`).
"""

from __future__ import annotations

from .bench import call_envelope, overhead_figure, pipeline_stages, sfu_capacity, transform_cpu, transform_overhead
from .call import call_pictures, sfu_picture, sfu_speech
from .capture import capture_analysis, decodable_share, frame_metadata, payload_bytes, three_views
from .keys import key_timeline
from .production import recording_playback, sfu_cpu
from .threats import attack_matrix, nonce_reuse_pictures, short_tag_attempts, speaking_timelines, video_frame_sizes

__all__ = [
    "attack_matrix",
    "call_envelope",
    "call_pictures",
    "capture_analysis",
    "decodable_share",
    "frame_metadata",
    "key_timeline",
    "nonce_reuse_pictures",
    "overhead_figure",
    "payload_bytes",
    "pipeline_stages",
    "recording_playback",
    "sfu_capacity",
    "sfu_cpu",
    "sfu_picture",
    "sfu_speech",
    "short_tag_attempts",
    "speaking_timelines",
    "three_views",
    "transform_cpu",
    "transform_overhead",
    "video_frame_sizes",
]
