"""Notebook 07 (crypto pitfalls): nonce reuse on real frames, the GCM forgery, short tags, task checks.

The demos run the attacks of :mod:`e2ee_lab.attacks.crypto` on real media: VP8 key frames of the
lab's camera scenes and Opus frames of its speech sample, encrypted by two :class:`SFrameContext`
senders that were (wrongly) given one base key under one KID (RFC 9605 §4.1, §9.1). The SFU holds
no key; it sees ``C_A XOR C_B = P_A XOR P_B``, reads Bob's picture once it knows Alice's frame,
recovers the GHASH key and forges a frame a real receiver accepts. The short-tag demo brute-forces
1- and 2-byte tags (a lab-only weakening) and extrapolates to suites 3, 2 and 1 (§7.5). Sizes come
from ``E2EE_LAB_SIZE`` (:func:`e2ee_lab.config.lab_size`).

Over 500 lines: one module per notebook, as every lab has; the three demonstrations and the four
checks share their frames and parameters.
"""

from __future__ import annotations

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
from e2ee_lab.labs import Feedback, check, correct, not_yet, unanswered
from e2ee_lab.labs.answers import Choice, Choices, Sealed, real_number

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


# --- Task 1: read Bob's caption -------------------------------------------------------------------------

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


def task1_frames() -> tuple[str, str, bytes]:
    """(frame 1 hex, frame 2 hex, plaintext 1): two caption frames under one key, KID and CTR."""
    return TASK1_FRAMES[0], TASK1_FRAMES[1], TASK1_KNOWN


@check
def check_recovered_plaintext(answer: bytes | str | None) -> Feedback:
    """Task 1: ``answer`` is Bob's plaintext recovered from the two frames and Alice's plaintext
    (sealed: ``07/T1``)."""
    if answer is None:
        return unanswered("Task 1")
    if isinstance(answer, str):
        answer = answer.encode()
    if not isinstance(answer, bytes):
        return not_yet("give the plaintext as bytes (or a str).")
    seal = Sealed("07/T1")
    if (message := seal.opens(answer)) is not None:
        return correct(message)
    c1, c2 = (bytes.fromhex(f) for f in TASK1_FRAMES)
    if answer and seal.opens(xor_bytes(answer, TASK1_KNOWN)) is not None:
        return not_yet("that is C1 ⊕ C2 = P1 ⊕ P2: XOR it with P1 once more to cancel Alice's plaintext.")
    if answer in (xor_bytes(xor_bytes(c1, c2), TASK1_KNOWN), xor_bytes(xor_bytes(c1[1:], c2[1:]), TASK1_KNOWN)):
        return not_yet("strip the SFrame parts first: the 1-byte header (KID 5 and CTR 0 fit in the config "
                       "byte) and the 16-byte GCM tag at the end; XOR only the ciphertexts.")
    if 0 < len(answer) < len(c2) - 17:
        return not_yet(f"your answer has {len(answer)} bytes; Bob's caption is as long as his ciphertext, "
                       "frame[1:-16]: did you cut too much?")
    return not_yet("not Bob's caption: take the ciphertexts (frame[1:-16]), XOR them, then XOR with P1.")


# --- Tasks 2 and 3: how long does a brute-force forgery take? ----------------------------------------

TASK2_TAG_BYTES = 3
TASK3_TAG_BYTES, TASK3_RATE = 4, MEDIA_RATE
TASK3_TOLERANCE = 0.01  #: answers within 1 % pass (up to 2 %: the seal holds 1 %-wide buckets)


@check
def check_expected_attempts(answer: int | None) -> Feedback:
    """Task 2: mean random forgeries until a receiver with a 3-byte tag accepts one (sealed: ``07/T2``)."""
    if answer is None:
        return unanswered("Task 2")
    x = real_number(answer)
    if x is None or not x.is_integer():
        return not_yet("give a whole number of attempts.")
    n = int(x)
    seal = Sealed("07/T2")
    if (message := seal.opens(n)) is not None:
        return correct(message)
    if n == 2**TASK2_TAG_BYTES:
        return not_yet("2^3 counts tag values for 3 bits; the tag has 3 bytes = 24 bits.")
    if n in (8 * TASK2_TAG_BYTES, 2**TASK2_TAG_BYTES * 8):
        return not_yet("bits, not a power: the number of tag values is 2^(8·Nt).")
    if seal.opens(2 * n) is not None:
        return not_yet("that is the mean of a search that never repeats a guess for one fixed frame; here "
                       "every forgery is a fresh random frame with a fresh right tag, so the mean is 1/p.")
    return not_yet(f"{n:,} is not it: a random tag of Nt bytes is right with probability 2^-(8·Nt); the mean "
                   "attempts are the inverse.")


@check
def check_forgery_days(answer: float | None) -> Feedback:
    """Task 3: days to one forgery against suite 3 when the receiver only lets 50 frames/s through
    (sealed by 1 % bucket: ``07/T3``)."""
    if answer is None:
        return unanswered("Task 3")
    x = real_number(answer)
    if x is None or x <= 0:
        return not_yet("give a positive number of days.")
    seal = Sealed("07/T3")
    if (message := seal.opens_number(x, TASK3_TOLERANCE)) is not None:
        return correct(message)
    if seal.opens_number(x / 86400, TASK3_TOLERANCE) is not None:
        return not_yet("that is the time in seconds; divide by 86,400 for days.")
    flood_days = expected_attempts(TASK3_TAG_BYTES) / RFC_PPS / 86400
    if math.isclose(x, flood_days, rel_tol=0.05):
        return not_yet("that is the RFC's flood at 2^20 frames/s; the rate check lets only 50 frames/s through.")
    if seal.opens_number(2 * x, TASK3_TOLERANCE) is not None:
        return not_yet("the mean of random forgeries is 2^32 attempts, not half of it.")
    return not_yet(f"{x:g} days is not it: expected attempts 2^(8·4), divided by 50 per second, "
                   "divided by 86,400 seconds per day.")


# --- Task 4: which rule prevents which pitfall ---------------------------------------------------------

#: Task 4's rules, lettered in each student's own order; a hint says what the picked rule is about.
RULES = Choices("07/T4", {
    "one-sender": Choice("each base key encrypts for exactly one sender (RFC 9605 §4.1, §9.2)",
                         "that rule is about two senders under one key: their frame n share a nonce"),
    "persist-ctr": Choice("store the next CTR before encrypting with the current one (§9.1)",
                          "that rule is about a restored client: a backup holding the last used CTR makes "
                          "it repeat the next one"),
    "refuse-repeat": Choice("the sender refuses to encrypt twice with one key and nonce (§7.4)",
                            "that rule is about the caller: SFrameContext raises NonceReuse for a ctr below "
                            "its next one, whatever the caller asks"),
    "long-tags": Choice("full-length tags, or short ones only behind HBH channels with rate checks (§7.5)",
                        "that rule is about guessing tags: 2^32 guesses take about an hour at 2^20/s"),
    "replay-window": Choice("the receiver keeps a replay window on CTR (§9.3)",
                            "that rule is about genuine frames sent again: only the CTR already seen gives "
                            "them away"),
})
PITFALLS = {
    "shared_group_key": "Alice and Bob were both given the group key as their send key under KID 1",
    "crash_restore": "a client saves its CTR to disk after each frame, crashes before one save, restarts",
    "app_passes_ctr": "an application bug calls protect(kid, frame, ctr=0) for every frame",
    "flood_short_tag": "someone on the path sends 2^20 random frames/s at receivers using 4-byte tags",
    "old_frame_again": "the SFU sends a genuine 2-second-old frame a second time",
}


def rules_table() -> pd.DataFrame:
    """Task 4's rules, one per letter (this student's letters)."""
    return pd.DataFrame({"rule": dict(RULES.items())}).rename_axis("letter")


def pitfalls_table() -> pd.DataFrame:
    """Task 4's pitfalls, one per key of the answer dict."""
    return pd.DataFrame({"what happens": PITFALLS}).rename_axis("pitfall")


@check
def check_design_rules(answer: dict[str, str | None] | None) -> Feedback:
    """Task 4: ``answer`` maps each pitfall of :data:`PITFALLS` to the letter of the rule in :data:`RULES`
    (sealed: ``07/T4`` and ``07/T4/<pitfall>``)."""
    if not isinstance(answer, dict) or all(v is None for v in answer.values()):
        return unanswered("Task 4")
    missing = [name for name in PITFALLS if answer.get(name) is None]
    if missing:
        return not_yet(f"still no rule for: {', '.join(missing)}.")
    picked = {name: RULES.parse(answer[name]) for name in PITFALLS}
    bad = {name: answer[name] for name, rule in picked.items() if rule is None}
    if bad:
        return not_yet(f"use the letters {', '.join(RULES)}; got {bad}.")
    if (message := Sealed("07/T4").opens(picked)) is not None:
        return correct(message)
    wrong = [name for name in PITFALLS if Sealed(f"07/T4/{name}").opens(picked[name]) is None]
    name = wrong[0]
    return not_yet(f"{len(wrong)} of {len(PITFALLS)} differ. '{name}' ({PITFALLS[name]}): you chose "
                   f"{RULES.letter_of(picked[name])}, and {RULES.options[picked[name]].hint}. Which rule stops "
                   "this one?")
