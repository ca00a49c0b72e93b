"""Notebook 07 (crypto pitfalls): nonce reuse on real frames, the GCM forgery, short tags, task checks.

The demos run the attacks of :mod:`e2ee_lab.attacks.crypto` on real media: VP8 key frames of the
lab's camera scenes and Opus frames of its speech sample, encrypted by two :class:`SFrameContext`
senders that were (wrongly) given one base key under one KID (RFC 9605 §4.1, §9.1). The SFU holds
no key; it sees ``C_A XOR C_B = P_A XOR P_B``, reads Bob's picture once it knows Alice's frame,
recovers the GHASH key and forges a frame a real receiver accepts. The short-tag demo brute-forces
1- and 2-byte tags (a lab-only weakening) and extrapolates to suites 3, 2 and 1 (§7.5). Sizes come
from ``E2EE_LAB_SIZE`` (:func:`e2ee_lab.config.lab_size`).

The tasks: write the keystream-reuse recovery (a build task: the check runs it on frame pairs drawn
per student, with every keystream suite's tag and headers of several lengths), the mean attempts
against this student's tag length, the days a rate-limited forger needs for this student's chance
and frame duration (``labs.params("07")``), and which RFC 9605 rule prevents which pitfall.

Over 500 lines: one module per notebook, as every lab has; the three demonstrations and the four
checks share their frames and parameters.
"""

from __future__ import annotations

import functools
import math
import random
import statistics
from dataclasses import dataclass

import numpy as np
import pandas as pd

from e2ee_lab.attacks.crypto import (
    BruteForceRun,
    FrameParts,
    VideoReuse,
    brute_force,
    chosen_ciphertext,
    ciphertext_xor,
    count_accepted,
    expected_attempts,
    forge_frame,
    gcm_auth_key,
    receiver_rate,
    recover_auth_key,
    recover_plaintext,
    shared_key_senders,
    xor_bytes,
)
from e2ee_lab.config import Size, lab_size
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, SFrameError, derive_key_salt, sframe_nonce
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import Choice, Choices, Sealed, call_safely, real_number, whole_number

DEMO_SUITE = CipherSuite.AES_128_GCM_SHA256_128
DEMO_BASE_KEY = bytes(range(0x40, 0x50))  # "the group key" both senders were given
DEMO_KID = 1
FORGED_PAYLOAD = b"injected by the SFU - no key needed"
RFC_PPS = 2**20  # RFC 9605 §7.5: roughly what a gigabit link carries, packets per second
MEDIA_RATE = 50  # frames/s of one 20 ms audio stream: what a rate check would let through
_TRIALS: dict[Size, dict[int, int]] = {"ci": {1: 300, 2: 6}, "full": {1: 3000, 2: 60}}


def _vp8_key_frame(participant: int, seed: int) -> tuple[bytes, np.ndarray]:
    """(the VP8 key frame, the picture) of a participant's camera, frame 0."""
    from e2ee_lab.media import Scene, VP8Encoder

    scene = Scene(participant, seed=seed)
    frame = VP8Encoder(ssrc=1000 + participant, fps=scene.fps).encode(scene.video_frame(0))
    return frame.data, scene.rgb(0)


def _opus_frames(offset_s: float, count: int) -> list[bytes]:
    """``count`` Opus frames of the speech sample from ``offset_s`` (encoders emit one per chunk)."""
    from e2ee_lab.media import OpusEncoder, SpeechSource

    encoder, source = OpusEncoder(ssrc=2000), SpeechSource(offset_s=offset_s)
    return [frame.data for frame in map(encoder.encode, source.chunks(count)) if frame is not None]


# --- nonce reuse on video key frames -------------------------------------------------------------


def video_nonce_reuse(known: int = 0, victim: int = 1, *, seed: int = 0,
                      suite: CipherSuite | int = DEMO_SUITE) -> VideoReuse:
    """Two senders with one base key and KID encrypt their first VP8 key frames at CTR 0.

    The attacker knows the ``known`` participant's picture (a public slide, a static badge) and
    re-encodes it with the same VP8 settings: libvpx is deterministic, so it gets the plaintext
    bit for bit and, with it, every byte of the victim's frame that fits under it.
    """
    from e2ee_lab.media import DecodeError, VP8Decoder
    from e2ee_lab.media.scene import PARTICIPANTS

    suite = CipherSuite(suite)
    plain_known, _ = _vp8_key_frame(known, seed)
    plain_victim, sent = _vp8_key_frame(victim, seed)
    alice, bob = shared_key_senders(suite, DEMO_KID, DEMO_BASE_KEY)
    frame_known, frame_victim = alice.protect(DEMO_KID, plain_known), bob.protect(DEMO_KID, plain_victim)
    guess, _ = _vp8_key_frame(known, seed)  # the attacker's own encoder run
    recovered = recover_plaintext(frame_known, frame_victim, guess, suite)
    try:
        picture = VP8Decoder().decode_rgb(recovered)
    except DecodeError:
        picture = None
    return VideoReuse(PARTICIPANTS[known % len(PARTICIPANTS)][0].title(),
                      PARTICIPANTS[victim % len(PARTICIPANTS)][0].title(),
                      frame_known, frame_victim, guess, guess == plain_known, plain_victim, recovered, sent,
                      picture, suite)


_VP8_FIELDS = ("frame tag", "frame tag", "frame tag", "start code", "start code", "start code",
               "width (LE, 14 bits)", "width", "height (LE, 14 bits)", "height")


def vp8_crib_table(reuse: VideoReuse, guessed_size: tuple[int, int] = (320, 240)) -> pd.DataFrame:
    """The first 10 bytes: C_A ⊕ C_B, a guess for Alice's header, and Bob's bytes read from it.

    Every VP8 key frame has the start code 9d 01 2a at bytes 3-5 (RFC 6386 §9.1) and a guessable
    size at 6-9, so the attacker reads Bob's start code and size without knowing Alice's frame.
    The frame tag (bytes 0-2) holds a partition size nobody can guess: marked "?".
    """
    xor = ciphertext_xor(reuse.frame_known, reuse.frame_victim, reuse.suite)[:10]
    width, height = guessed_size
    guess = [None] * 3 + [0x9D, 0x01, 0x2A] + list(width.to_bytes(2, "little") + height.to_bytes(2, "little"))
    rows = []
    for i, field in enumerate(_VP8_FIELDS):
        read = None if guess[i] is None else xor[i] ^ guess[i]
        rows.append((i, field, f"{xor[i]:02x}", "?" if guess[i] is None else f"{guess[i]:02x}",
                     "?" if read is None else f"{read:02x}", f"{reuse.victim_plaintext[i]:02x}"))
    df = pd.DataFrame(rows, columns=["byte", "VP8 field", "C_A ⊕ C_B", "guess for Alice",
                                     f"{reuse.victim_name} read by the SFU", f"{reuse.victim_name} true"])
    return df.set_index("byte")


def reuse_summary(reuse: VideoReuse) -> pd.DataFrame:
    """Sizes and outcomes of the known-plaintext recovery, one row each."""
    from e2ee_lab.media import picture_matches

    xor = ciphertext_xor(reuse.frame_known, reuse.frame_victim, reuse.suite)
    plain_xor = xor_bytes(reuse.known_plaintext, reuse.victim_plaintext)
    rows = [
        (f"{reuse.known_name}'s key frame (known)", f"{len(reuse.known_plaintext)} B"),
        (f"{reuse.victim_name}'s key frame (secret)", f"{len(reuse.victim_plaintext)} B"),
        ("same SFrame header on both (same KID and CTR)",
         FrameParts.parse(reuse.frame_known, reuse.suite).header == FrameParts.parse(reuse.frame_victim,
                                                                                      reuse.suite).header),
        ("C_A ⊕ C_B equals P_A ⊕ P_B", xor == plain_xor),
        ("attacker's re-encoding equals the known plaintext", reuse.reencoded_equal),
        (f"bytes of {reuse.victim_name}'s frame recovered",
         f"{sum(a == b for a, b in zip(reuse.recovered, reuse.victim_plaintext))} of {len(reuse.victim_plaintext)}"),
        ("recovered frame decodes to the sent picture",
         reuse.picture is not None and picture_matches(reuse.picture, reuse.sent)),
    ]
    return pd.DataFrame(rows, columns=["", "value"]).set_index("")


# --- why RFC 9605 gives every sender its own key ---------------------------------------------------


def _separation_row(suite: CipherSuite, a: tuple[bytes, int], b: tuple[bytes, int], first: bytes,
                    second: bytes) -> tuple:
    """Whether two senders with (base key, KID) ``a`` and ``b`` share key, nonce, keystream, H."""
    (key_a, salt_a), (key_b, salt_b) = derive_key_salt(suite, a[1], a[0]), derive_key_salt(suite, b[1], b[0])
    alice, bob = SFrameContext(suite), SFrameContext(suite)
    alice.add_send_key(a[1], a[0])
    bob.add_send_key(b[1], b[0])
    xor = ciphertext_xor(alice.protect(a[1], first), bob.protect(b[1], second), suite)
    shared = xor == xor_bytes(first, second)
    same_h = None if suite.is_ctr_hmac else gcm_auth_key(key_a) == gcm_auth_key(key_b)
    read = xor_bytes(xor, first).decode(errors="replace") if shared else "(noise)"
    return key_a == key_b, sframe_nonce(salt_a, 0) == sframe_nonce(salt_b, 0), shared, same_h, read


def key_separation_table(first: bytes = b"Alice: the launch slips to May, sorry",
                         second: bytes = b"Bob: keep this out of the notes",
                         suite: CipherSuite | int = DEMO_SUITE) -> pd.DataFrame:
    """Three ways to give two senders keys, and whether their CTR-0 frames share a keystream."""
    suite = CipherSuite(suite)
    setups = {
        "one key, one KID for both (the pitfall)": ((DEMO_BASE_KEY, 1), (DEMO_BASE_KEY, 1)),
        "one group key, a KID per sender (MLS style, §5.2)": ((DEMO_BASE_KEY, 1), (DEMO_BASE_KEY, 2)),
        "a base key per sender (sender keys, §5.1)": ((DEMO_BASE_KEY, 1), (bytes(range(0x80, 0x90)), 2)),
    }
    rows = [(name, *_separation_row(suite, a, b, first, second)) for name, (a, b) in setups.items()]
    return pd.DataFrame(rows, columns=["setup", "same sframe_key", "same nonce at CTR 0", "C_A ⊕ C_B = P_A ⊕ P_B",
                                       "same GHASH key H", "Bob's frame from C_A ⊕ C_B ⊕ P_A"]).set_index("setup")


# --- the forbidden attack on real Opus frames -------------------------------------------------------


@dataclass(frozen=True)
class AudioReuse:
    """Alice's and Bob's Opus frames, both encrypted at CTR 0, 1, 2, ... under one key and KID."""

    frames_a: tuple[bytes, ...]  # SFrame ciphertexts of Alice's frames
    frames_b: tuple[bytes, ...]  # SFrame ciphertexts of Bob's frames, same CTRs
    known_a: tuple[bytes, ...]  # Alice's Opus frames as the attacker encoded her known audio itself
    reencoded_equal: bool  # the attacker's encoding is bit-identical to what Alice encrypted
    suite: CipherSuite


def audio_nonce_reuse(count: int = 12, *, offset_b: float = 5.0,
                      suite: CipherSuite | int = DEMO_SUITE) -> AudioReuse:
    """``count`` speech frames from each of two senders sharing one base key and KID."""
    suite = CipherSuite(suite)
    plain_a, plain_b = _opus_frames(0.0, count), _opus_frames(offset_b, count)
    alice, bob = shared_key_senders(suite, DEMO_KID, DEMO_BASE_KEY)
    known_a = tuple(_opus_frames(0.0, count))  # the attacker's own encoder run on Alice's known audio
    return AudioReuse(tuple(alice.protect(DEMO_KID, p) for p in plain_a),
                      tuple(bob.protect(DEMO_KID, p) for p in plain_b), known_a, known_a == tuple(plain_a), suite)


@dataclass(frozen=True)
class Forgery:
    """The GCM forgery: H recovered from nonce-reused pairs, then a frame the receiver accepts."""

    pairs: int  # frame pairs the attacker used to pin H down
    blocks: int  # GHASH blocks of the longer frame of the first pair (the polynomial's degree)
    auth_key: bytes  # H as the attacker recovered it
    true_auth_key: bytes  # AES_K(0^128) from the real key (ground truth)
    payload: bytes  # what the attacker chose the receiver should get
    keystream_known: bool  # the attacker's encoding of Alice's audio equals her real frames
    forged_frame: bytes  # the frame the SFU delivered instead of Alice's genuine one
    received: bytes | None  # what SFrameContext.unprotect returned (None if it raised)
    verdict: str  # "accepted" or the receiver's drop reason
    genuine_verdict: str  # what the receiver says when Alice's real frame arrives after the forgery


def _verdict(receiver: SFrameContext, frame: bytes) -> tuple[bytes | None, str]:
    try:
        return receiver.unprotect(frame), "accepted"
    except SFrameError as err:
        return None, err.reason


def gcm_forgery(audio: AudioReuse, payload: bytes = FORGED_PAYLOAD, pairs: int = 3) -> Forgery:
    """Recover H from the shortest nonce-reused pairs, then forge Alice's last frame.

    A receiver with the real key (and a replay window) accepts Alice's frames up to the last one;
    the SFU holds that one back and delivers a forgery with the same header, ``payload`` encrypted
    with the keystream it learned from Alice's known frame, and a tag computed from H.
    """
    suite = audio.suite
    by_length = sorted(zip(audio.frames_a[:-1], audio.frames_b[:-1]), key=lambda p: max(map(len, p)))
    chosen = by_length[:pairs]
    auth_key = recover_auth_key(chosen, suite=suite)
    receiver = SFrameContext(suite)
    receiver.add_receive_key(DEMO_KID, DEMO_BASE_KEY)
    for frame in audio.frames_a[:-1]:
        receiver.unprotect(frame)
    genuine = audio.frames_a[-1]
    body = chosen_ciphertext(genuine, audio.known_a[-1], payload, suite=suite)
    forged = forge_frame(genuine, auth_key, body, suite=suite)
    received, verdict = _verdict(receiver, forged)
    _, genuine_verdict = _verdict(receiver, genuine)
    key, _ = derive_key_salt(suite, DEMO_KID, DEMO_BASE_KEY)
    longest = max(len(FrameParts.parse(f, suite).ciphertext) for f in chosen[0])
    blocks = -(-longest // 16) + 2  # ciphertext blocks + one header (AAD) block + the length block
    return Forgery(len(chosen), blocks, auth_key, gcm_auth_key(key), payload, audio.reencoded_equal, forged,
                   received, verdict, genuine_verdict)


def forgery_table(forgery: Forgery) -> pd.DataFrame:
    """The forbidden attack step by step, with what each step produced."""
    rows = [
        ("1. equation", f"T_A ⊕ T_B = GHASH(C_A) ⊕ GHASH(C_B): a polynomial of degree {forgery.blocks} in H"),
        ("2. roots", f"solved in GF(2^128) with {forgery.pairs} frame pair(s): H = {forgery.auth_key.hex()}"),
        ("   check", f"H equals AES_K(0^128) of the real key: {forgery.auth_key == forgery.true_auth_key}"),
        ("3. keystream", f"Alice's audio re-encoded by the attacker equals her frames: {forgery.keystream_known}"),
        ("4. forge", f"hold back Alice's next frame; C' = her keystream ⊕ {len(forgery.payload)}-byte payload"),
        ("   tag", "T' = GHASH_H(header, C') ⊕ E_K(J0), with E_K(J0) = her tag ⊕ GHASH_H(header, C)"),
        ("5. receiver", f"SFrameContext.unprotect: {forgery.verdict}, returned {forgery.received!r}"),
        ("6. Alice's real frame", f"arrives afterwards: {forgery.genuine_verdict}"),
    ]
    return pd.DataFrame(rows, columns=["step", "result"]).set_index("step")


# --- short tags (RFC 9605 §7.5) -------------------------------------------------------------------------


def run_short_tags(trials: dict[int, int] | None = None, *, seed: int = 0,
                   size: Size | None = None) -> dict[int, BruteForceRun]:
    """Brute-force forgeries against 1- and 2-byte tags; trials per tag length by lab size."""
    trials = trials or _TRIALS[size or lab_size()]
    return {nt: brute_force(nt, n, seed=seed + nt) for nt, n in trials.items()}


def short_tag_table(runs: dict[int, BruteForceRun]) -> pd.DataFrame:
    """Measured attempts per forgery against the expectation 2^(8·Nt), per tag length."""
    rows = [(nt, len(r.attempts), r.expected, round(r.mean, 1), round(r.ratio, 2), statistics.median(r.attempts),
             min(r.attempts), max(r.attempts), round(r.rate)) for nt, r in runs.items()]
    return pd.DataFrame(rows, columns=["tag bytes", "trials", "expected attempts", "mean attempts",
                                       "mean / expected", "median", "min", "max", "forgeries/s"]).set_index("tag bytes")


def human_time(seconds: float) -> str:
    """A duration in the largest unit that keeps it readable (µs ... years)."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60), ("s", 1),
                       ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.3g} {unit}" if value < 1e6 else f"{value:.2e} {unit}"
    return f"{seconds * 1e6:.2g} µs"


def extrapolation_table(rate: float, tags: tuple[int, ...] = (1, 2, 4, 8, 10, 16)) -> pd.DataFrame:
    """Expected time to one forgery per tag length at ``rate``/s, at 2^20/s and at one audio stream's 50/s."""
    names = {4: "suite 3", 8: "suite 2", 10: "suite 1", 16: "suites 4, 5 (GCM)"}
    rows = [(nt, names.get(nt, "lab only"), f"2^{8 * nt}", human_time(expected_attempts(nt) / rate),
             human_time(expected_attempts(nt) / RFC_PPS), human_time(expected_attempts(nt) / MEDIA_RATE))
            for nt in tags]
    return pd.DataFrame(rows, columns=["tag bytes", "cipher suite", "expected attempts",
                                       f"at {rate:,.0f}/s (this receiver)", "at 2^20/s (RFC 9605 §7.5)",
                                       f"at {MEDIA_RATE}/s (rate-limited)"]).set_index("tag bytes")


def full_tag_check(attempts: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Real receivers under random forgeries: suites 3 and 4 accept none, a genuine frame passes."""
    rows = []
    for suite in (CipherSuite.AES_128_CTR_HMAC_SHA256_32, CipherSuite.AES_128_GCM_SHA256_128):
        sender, receiver = SFrameContext(suite), SFrameContext(suite)
        sender.add_send_key(DEMO_KID, DEMO_BASE_KEY)
        receiver.add_receive_key(DEMO_KID, DEMO_BASE_KEY)
        accepted = count_accepted(receiver.unprotect, attempts, kid=DEMO_KID, ctr=10**6, body_len=20,
                                  tag_bytes=suite.nt, rng=random.Random(seed))
        genuine = _verdict(receiver, sender.protect(DEMO_KID, b"a genuine frame"))[1]
        rows.append((suite.name, suite.nt, attempts, accepted, genuine))
    return pd.DataFrame(rows, columns=["suite", "tag bytes", "random forgeries", "accepted",
                                       "genuine frame"]).set_index("suite")


def measured_receiver_rate(attempts: int | None = None) -> float:
    """Forgeries/s a real suite-3 SFrameContext rejects on this machine."""
    return receiver_rate(attempts=attempts or (20_000 if lab_size() == "ci" else 200_000))[0]


def results_table(video: VideoReuse, forgery: Forgery, runs: dict[int, BruteForceRun],
                  rate: float) -> pd.DataFrame:
    """The lab's numbers in one table a student can quote."""
    rows = [
        ("nonce reuse", "C_A ⊕ C_B = P_A ⊕ P_B (VP8 key frames)",
         ciphertext_xor(video.frame_known, video.frame_victim, video.suite)
         == xor_bytes(video.known_plaintext, video.victim_plaintext)),
        ("nonce reuse", f"bytes of {video.victim_name}'s key frame read with a known frame",
         f"{len(video.recovered)} of {len(video.victim_plaintext)}" + (" (exact)" if video.exact else "")),
        ("GCM forbidden attack", "GHASH key H recovered (equals AES_K(0))", forgery.auth_key == forgery.true_auth_key),
        ("GCM forbidden attack", "forged frame accepted by SFrameContext.unprotect", forgery.verdict == "accepted"),
    ]
    for nt, run in runs.items():
        rows.append(("short tags", f"{nt}-byte tag: mean attempts over {len(run.attempts)} trials (expected "
                                   f"{run.expected:,})", f"{run.mean:,.0f} ({run.ratio:.2f}×)"))
    rows += [
        ("short tags", "forgeries/s a real suite-3 receiver checks here", f"{rate:,.0f}"),
        ("short tags", "suite 3 (4 B): one forgery expected after, at that rate",
         human_time(expected_attempts(4) / rate)),
        ("short tags", "suite 3 (4 B) at 2^20/s (RFC 9605 §7.5)", human_time(expected_attempts(4) / RFC_PPS)),
        ("short tags", "suite 1 (10 B) at 2^20/s", human_time(expected_attempts(10) / RFC_PPS)),
    ]
    return pd.DataFrame(rows, columns=["pitfall", "measurement", "value"])


# --- Task 1: the keystream-reuse recovery (build) -------------------------------------------------------

TASK1_KID = 5
TASK1_KNOWN = b"caption 14:02 ALICE: the budget is final, thanks all"
#: Alice's and Bob's caption frames under one (key, KID 5, CTR 0), as the SFU forwarded them; the
#: instructor module makes them (tests/test_labs_checks.py checks they are what it makes).
TASK1_FRAMES = (
    "50fdc672fd1b0645f9078e8cd48de065207efd3fb24dd203678e5eb58bd8639486156162d9186c763d5e1b397621837411e46a383ac8"
    "404f8bfb654674f2c8aedf0758f9b3",
    "50fdc672fd1b0645f9078e8cd48de0662375845ac14dd40e71c75baecfd068c0eb137c26de082e37251757213e2e823f0daa6e281463"
    "bb582567b26ff4899bbf8c6e60",
)
#: The keystream suites of the probe's pairs: AES-GCM and the three AES-CTR + HMAC tag lengths.
_TASK1_SUITES = (CipherSuite.AES_128_GCM_SHA256_128, CipherSuite.AES_128_CTR_HMAC_SHA256_80,
                 CipherSuite.AES_128_CTR_HMAC_SHA256_64, CipherSuite.AES_128_CTR_HMAC_SHA256_32)
_WORDS = ("the", "board", "moved", "launch", "to", "May", "keep", "this", "quiet", "budget", "cut", "by", "ten",
          "percent", "call", "me", "after", "review", "is", "off", "vote", "on", "Friday", "new", "CEO", "named")
_NAMES = ("ALICE", "BOB", "CAROL", "DAVE", "ERIN", "FRANK")


def task1_frames() -> tuple[str, str, bytes]:
    """(frame 1 hex, frame 2 hex, plaintext 1): two caption frames under one key, KID and CTR."""
    return TASK1_FRAMES[0], TASK1_FRAMES[1], TASK1_KNOWN


@dataclass(frozen=True)
class ReuseCase:
    """One probe input of Task 1: two frames under one (key, KID, CTR), frame 1's plaintext, Nt."""

    frame_1: bytes
    frame_2: bytes
    known_1: bytes
    nt: int
    header_length: int
    secret: bytes  # frame 2's plaintext: the check compares, the student's function never sees it


def _caption(rng: random.Random, words: int) -> bytes:
    minute = f"{rng.randrange(8, 18):02d}:{rng.randrange(60):02d}"
    return f"caption {minute} {rng.choice(_NAMES)}: {' '.join(rng.choice(_WORDS) for _ in range(words))}".encode()


def _reuse_cases() -> list[ReuseCase]:
    """Task 1's pairs, drawn for this student: every keystream suite, headers of 1 to 6 bytes, and
    known plaintexts longer than, as long as and shorter than frame 2's."""
    rng = params("07").rng("task1 cases")
    shapes = ((0, 6, 6), (1, 4, 9), (2, 9, 4), (3, 7, 7), (0, 3, 10), (1, 10, 3))  # (suite index, words 1, words 2)
    cases = []
    for suite_index, words_1, words_2 in shapes:
        suite = _TASK1_SUITES[suite_index]
        kid = rng.choice((rng.randrange(8), rng.randrange(8, 256), rng.randrange(256, 65536)))
        ctr = rng.choice((rng.randrange(8), rng.randrange(8, 256), rng.randrange(256, 1 << 20)))
        known, secret = _caption(rng, words_1), _caption(rng, words_2)
        alice, bob = shared_key_senders(suite, kid, rng.randbytes(16))
        frame_1, frame_2 = alice.protect(kid, known, ctr=ctr), bob.protect(kid, secret, ctr=ctr)
        hlen = len(frame_1) - len(known) - suite.nt
        cases.append(ReuseCase(frame_1, frame_2, known, suite.nt, hlen, secret))
    return cases


def probe_recovery(func) -> list[dict]:
    """Task 1's probe: the student's ``recover(frame_1, frame_2, known_1, nt)`` on this student's pairs."""
    return [call_safely(func, case.frame_1, case.frame_2, case.known_1, case.nt) for case in _reuse_cases()]


def _recovery_hint(case: ReuseCase, got: bytes) -> str:
    """Why ``got`` is not what ``case`` hides: a known mistake, by its shape; never the plaintext."""
    f1, f2, known, nt, h = case.frame_1, case.frame_2, case.known_1, case.nt, case.header_length
    c1, c2 = f1[h:-nt], f2[h:-nt]
    where = f"for a pair with a {h}-byte header and a {nt}-byte tag"
    if got == xor_bytes(c1, c2):
        return (f"{where} your function returned C1 ⊕ C2, which is P1 ⊕ P2: XOR it with frame 1's known "
                "plaintext once more to cancel it.")
    if got and got == known[: len(got)]:
        return f"{where} your function returned the known plaintext itself: the other frame's is what to recover."
    shapes = {"the whole frames (header and tag included)": (f1, f2), "a 1-byte header": (f1[1:-nt], f2[1:-nt]),
              "a 16-byte tag": (f1[h:-16], f2[h:-16]), "the tag left on": (f1[h:], f2[h:])}
    for mistake, (a, b) in shapes.items():
        if (a, b) != (c1, c2) and got == xor_bytes(xor_bytes(a, b), known):
            return (f"{where} your function XORed {mistake}. Strip exactly the header (its length is in the "
                    "config byte: decode_header, or your Lab 03 parser) and the last nt bytes (the tag).")
    want = min(len(c1), len(c2))
    if len(got) != want:
        longer = "frame 2's ciphertext" if len(c2) < len(c1) else "the known plaintext"
        return (f"{where} your function returned {len(got)} bytes: a keystream byte is known only where the "
                f"known plaintext covers it, and frame 2 has no more bytes than its ciphertext; here {longer} is "
                "the shorter one, so that is how much can be recovered.")
    return (f"{where} your function returned the right number of bytes but not frame 2's plaintext: take the two "
            "ciphertexts (header and tag stripped), XOR them, then XOR with the known plaintext.")


@check(probe=probe_recovery)
def check_recovery(answer) -> Feedback:
    """Task 1 (build): the student's ``recover(frame_1, frame_2, known_1, nt) -> bytes`` on this student's
    pairs (:func:`_reuse_cases`): frame 2's plaintext as far as the known plaintext covers it."""
    if answer is None:
        return unanswered("Task 1")
    if not isinstance(answer, Probed):
        return not_yet("define recover(frame_1, frame_2, known_1, nt) as a function and pass the function itself.")
    cases, outputs = _reuse_cases(), answer.outputs
    if not isinstance(outputs, list) or len(outputs) != len(cases) or not all(isinstance(o, dict) for o in outputs):
        return not_yet("the check could not run recover on its pairs; pass the function itself.")
    for case, got in zip(cases, outputs):
        if "value" not in got:
            return not_yet(f"on a pair with a {case.header_length}-byte header and a {case.nt}-byte tag your function "
                           f"raised {got.get('raised')}; it gets the frames as bytes and nt as an int.")
        value = got["value"]
        if not isinstance(value, bytes):
            return not_yet(f"return bytes (your function returned a {type(value).__name__}).")
        if value != case.secret[: min(len(case.known_1), len(case.secret))]:
            return not_yet(_recovery_hint(case, value))
    return correct("every pair gave up frame 2's plaintext, with any header and tag length: C1 ⊕ C2 ⊕ P1 = P2, no "
                   "key needed, and each byte of the known frame unlocks one byte of the other.")


# --- Tasks 2 and 3: how long does a brute-force forgery take? ----------------------------------------

#: Task 2's tag lengths (bytes): none is a registered suite's, nor one the lab measured or tabulated.
TASK2_TAG_BYTES = (3, 5, 6, 7)
TASK3_TAG_BYTES = 4  # suite 3, AES_128_CTR_HMAC_SHA256_32
#: Task 3's frame durations (ms): the rate check lets one forged frame through per frame duration.
TASK3_PTIMES = (10, 20, 40, 60)
#: Task 3's chances (percent) of at least one accepted forgery.
TASK3_CHANCES = (10, 50, 90)
TASK3_TOLERANCE = 0.01  #: answers within 1 % pass (up to 2 %: the seal holds 1 %-wide buckets)


def task2_tag_bytes() -> int:
    """This student's tag length for Task 2 (``labs.params("07")``)."""
    return params("07").choice("task2 tag bytes", TASK2_TAG_BYTES, 3)


def task3_setting() -> dict[str, int]:
    """This student's Task 3: the frame duration in ms and the chance in percent (``labs.params("07")``)."""
    p = params("07")
    return {"ptime_ms": p.choice("task3 ptime", TASK3_PTIMES, 20), "chance_pct": p.choice("task3 chance",
                                                                                          TASK3_CHANCES, 50)}


@check
def check_expected_attempts(answer: int | None) -> Feedback:
    """Task 2: mean random forgeries until a receiver with this student's tag length accepts one
    (sealed per length: ``07/T2/nt=<n>``)."""
    if answer is None:
        return unanswered("Task 2")
    n = whole_number(answer)
    if n is None or n <= 0:
        return not_yet("give a whole, positive number of attempts (an int).")
    nt = task2_tag_bytes()
    seal = Sealed(f"07/T2/nt={nt}")
    if (message := seal.opens(n)) is not None:
        return correct(message)
    if n == 2**nt:
        return not_yet(f"2^{nt} counts the values of a {nt}-bit tag; this tag has {nt} bytes.")
    if n in (8 * nt, 2**nt * 8):
        return not_yet("bits, not a power: count the values a tag of that many bits can take.")
    if seal.opens(2 * n) is not None:
        return not_yet("that is the mean of a search that never repeats a guess for one fixed frame; here "
                       "every forgery is a fresh random frame with a fresh right tag, so the mean is 1/p.")
    return not_yet(f"{n:,} is not it: a random tag of Nt bytes is right with probability 2^-(8·Nt); the mean "
                   "number of attempts of a geometric distribution is 1/p.")


@check
def check_forgery_days(answer: float | None) -> Feedback:
    """Task 3: days until a forger's chance of at least one accepted frame reaches this student's chance,
    against suite 3 behind a rate check of one frame per frame duration (sealed per setting, by 1 %
    bucket: ``07/T3/ptime=<ms>,chance=<pct>``)."""
    if answer is None:
        return unanswered("Task 3")
    x = real_number(answer)
    if x is None or x <= 0:
        return not_yet("give a positive number of days.")
    setting = task3_setting()
    ptime, chance = setting["ptime_ms"], setting["chance_pct"]
    seal = Sealed(f"07/T3/ptime={ptime},chance={chance}")
    if (message := seal.opens_number(x, TASK3_TOLERANCE)) is not None:
        return correct(message)
    for factor, unit in ((1 / 86400, "seconds"), (1 / 24, "hours"), (365.25, "years")):
        if seal.opens_number(x * factor, TASK3_TOLERANCE) is not None:
            return not_yet(f"that is the time in {unit}; the task asks for days.")
    close = functools.partial(math.isclose, x, rel_tol=0.03)
    mean_days = expected_attempts(TASK3_TAG_BYTES) * ptime / 1000 / 86400
    if close(expected_attempts(TASK3_TAG_BYTES) / RFC_PPS / 86400 * chance / 100) or close(
            expected_attempts(TASK3_TAG_BYTES) / RFC_PPS / 86400):
        return not_yet("that is the RFC's flood at 2^20 frames/s; the rate check lets one frame through per "
                       f"{ptime} ms.")
    if close(mean_days):
        return not_yet(f"that is the mean time to the first success (2^32 attempts); the task asks when the chance "
                       f"of at least one success reaches {chance} %, which is another number of attempts.")
    if close(mean_days * chance / 100):
        return not_yet("n·p counts the expected number of successes, not the chance of at least one success; the "
                       "two differ once n·p is no longer small.")
    if ptime != 20 and any(close(mean_days * 20 / ptime * k) for k in (1, chance / 100)):
        return not_yet(f"that assumes 50 frames/s (20 ms frames); your stream sends one frame every {ptime} ms.")
    return not_yet(f"{x:g} days is not it: each forgery is an independent try that succeeds with p = 2^-32. "
                   "What is the chance that n tries all fail, and for which n does the chance of at least one "
                   f"success reach {chance} %? Then turn n tries into days at one try per {ptime} ms.")


# --- Task 4: which rule prevents which pitfall ---------------------------------------------------------

#: Task 4's rules, lettered in each student's own order.
RULES = Choices("07/T4", {
    "one-sender": Choice("each base key encrypts for exactly one sender (RFC 9605 §4.4.1)", ""),
    "persist-ctr": Choice("store the next CTR before encrypting with the current one (§9.1)", ""),
    "refuse-repeat": Choice("the sender refuses to encrypt twice with one key and nonce (§7.4)", ""),
    "long-tags": Choice("full-length tags, or short ones only behind HBH channels with rate checks (§7.5)", ""),
    "replay-window": Choice("the receiver keeps a replay window on CTR (§9.3)", ""),
})
PITFALLS = {
    "shared_group_key": "Alice and Bob were both given the group key as their send key under KID 1",
    "crash_restore": "a client saves its CTR to disk after each frame, crashes before one save, restarts",
    "app_passes_ctr": "an application bug calls protect(kid, frame, ctr=0) for every frame",
    "flood_short_tag": "someone on the path sends 2^20 random frames/s at receivers using 4-byte tags",
    "old_frame_again": "the SFU sends a genuine 2-second-old frame a second time",
}
#: Pairings students commonly give, each with the misconception behind it (never a right one).
_RULE_MISTAKES = (
    ("crash_restore", "refuse-repeat", "a restarted client has lost the memory of what it used: it cannot refuse a "
                                       "CTR it no longer knows it used, so the fix has to come before the crash"),
    ("app_passes_ctr", "persist-ctr", "nothing crashed here: the process remembers every CTR it used, and the "
                                      "question is what it does when the caller asks for one again"),
    ("old_frame_again", "long-tags", "a genuine frame carries a genuine tag, whatever its length; what gives it "
                                     "away is a CTR the receiver has seen"),
    ("flood_short_tag", "replay-window", "every random forgery can carry a fresh CTR, so nothing has been seen "
                                         "before; the forger is guessing tags"),
    ("shared_group_key", "refuse-repeat", "each sender's context is correct on its own and never repeats its own "
                                          "nonce; no single context can see the other one"),
)


def rules_table() -> pd.DataFrame:
    """Task 4's rules, one per letter (this student's letters)."""
    return pd.DataFrame({"rule": dict(RULES.items())}).rename_axis("letter")


def pitfalls_table() -> pd.DataFrame:
    """Task 4's pitfalls, one per key of the answer dict."""
    return pd.DataFrame({"what happens": PITFALLS}).rename_axis("pitfall")


@check
def check_design_rules(answer: dict[str, str | None] | None) -> Feedback:
    """Task 4: ``answer`` maps each pitfall of :data:`PITFALLS` to the letter of the rule in :data:`RULES`
    (sealed: ``07/T4``). A wrong answer gets a hint only for a known confusion; it never says which
    or how many pairings are right."""
    if not isinstance(answer, dict) or all(v is None for v in answer.values()):
        return unanswered("Task 4")
    missing = [name for name in PITFALLS if answer.get(name) is None]
    if missing:
        return not_yet(f"still no rule for: {', '.join(missing)}.")
    picked = {name: RULES.parse(answer[name]) for name in PITFALLS}
    bad = {name: answer[name] for name, rule in picked.items() if rule is None}
    if bad:
        return not_yet(f"use the letters {', '.join(RULES)}; got {bad}.")
    if len(set(picked.values())) < len(PITFALLS):
        return not_yet("each rule prevents exactly one of the pitfalls: use every letter once.")
    if (message := Sealed("07/T4").opens(picked)) is not None:
        return correct(message)
    for name, rule, why in _RULE_MISTAKES:
        if picked[name] == rule:
            return not_yet(f"'{name}' with {RULES.letter_of(rule)}: {why}.")
    return not_yet("not every pairing is right yet. For each pitfall ask who makes the mistake (key management, "
                   "the sender's storage, the sending code, an attacker guessing, the SFU resending) and which "
                   "rule acts at that point.")
