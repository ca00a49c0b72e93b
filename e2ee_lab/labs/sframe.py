"""Notebook 03 (SFrame by hand): the walk-through tables and the task checks.

Every table takes one frame through RFC 9605 step by step with the real code of
:mod:`e2ee_lab.crypto.sframe`: the header's config byte and KID/CTR fields (§4.3), the key schedule
(§4.4.2), nonce = salt XOR CTR and AAD = header || metadata (§4.4.3), the tag, the overhead per
frame (Appendix B) on the lab's own Opus and VP8 frames, and what goes wrong when two senders share
a key (§4.4.1, §7.4). The defaults are the RFC's own example (Appendix C.3), so every hex string can
be compared with the RFC text. Bits are numbered here as Python shifts them (bit 0 the least
significant); the RFC's figures number them from the left (its bit 0 is X, ``cfg >> 7``).

The tasks: decode this student's header by hand (``labs.params("03")``), predict the receiver's
verdict on eight tampered frames, count one frame's overhead, and write a strict header parser
(a build task: the check runs it on valid, truncated and non-minimal headers).
"""

from __future__ import annotations

import pandas as pd
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee_lab.crypto.sframe import (
    CipherSuite,
    SFrameContext,
    decode_header,
    derive_key_salt,
    encode_header,
    key_labels,
    overhead,
    sframe_nonce,
)
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import Sealed, plain_copy

# The RFC 9605 Appendix C.3 example (suite 4 row): KID 0x123, CTR 0x4567, base key 00..0f.
DEMO_SUITE = CipherSuite.AES_128_GCM_SHA256_128
DEMO_KID = 0x123
DEMO_CTR = 0x4567
DEMO_BASE_KEY = bytes(range(16))
DEMO_METADATA = b"IETF SFrame WG"
DEMO_PLAINTEXT = b"draft-ietf-sframe-enc"
RFC_CIPHERTEXT = "9901234567b7412c2513a1b66dbb48841bbaf17f598751176ad847681a69c6d0b091c07018ce4adb34eb"


# --- the header (§4.3) ----------------------------------------------------------------------------


def config_byte_table(header: bytes) -> pd.DataFrame:
    """The four fields of a header's first byte: bits, value and what they mean. Positions are given
    both ways: as this lab counts (bit 0 the least significant, ``cfg >> 7`` is X) and as RFC 9605's
    figure counts (from the left: its bit 0 is X)."""
    cfg = header[0]
    x, k, y, c = cfg >> 7, cfg >> 4 & 7, cfg >> 3 & 1, cfg & 7
    rows = [
        ("X", "bit 7", "0", f"{x}", "KID is in extra bytes" if x else "KID is the K field itself"),
        ("K", "bits 6-4", "1-3", f"{k:03b} = {k}",
         f"KID takes {k + 1} byte(s) after this one" if x else f"KID = {k}"),
        ("Y", "bit 3", "4", f"{y}", "CTR is in extra bytes" if y else "CTR is the C field itself"),
        ("C", "bits 2-0", "5-7", f"{c:03b} = {c}",
         f"CTR takes {c + 1} byte(s) after the KID" if y else f"CTR = {c}"),
    ]
    df = pd.DataFrame(rows, columns=["field", "position (bit 0 = least significant)", "RFC figure's bits",
                                     "value", "meaning"])
    df.attrs["config byte"] = f"0x{cfg:02x} = {cfg:08b}"
    return df


def header_table(kid: int, ctr: int) -> pd.DataFrame:
    """The encoded header of (KID, CTR) cut into its parts, in hex."""
    header = encode_header(kid, ctr)
    cfg = header[0]
    kid_len = (cfg >> 4 & 7) + 1 if cfg & 0x80 else 0
    ctr_len = (cfg & 7) + 1 if cfg & 0x08 else 0
    parts = [("config byte", header[:1], f"{cfg:08b}"),
             ("KID bytes", header[1 : 1 + kid_len],
              f"KID = {kid} (0x{kid:x})" if kid_len else "none: KID < 8"),
             ("CTR bytes", header[1 + kid_len :], f"CTR = {ctr} (0x{ctr:x})" if ctr_len else "none: CTR < 8")]
    return pd.DataFrame([(name, part.hex() or "-", len(part), note) for name, part, note in parts],
                        columns=["part", "hex", "bytes", "note"])


def header_examples(pairs: list[tuple[int, int]] | None = None) -> pd.DataFrame:
    """Headers for a few (KID, CTR) pairs: how the length grows with the values."""
    pairs = pairs or [(0, 0), (1, 7), (1, 8), (1, 255), (1, 256), (0x123, 0x4567), (2**64 - 1, 2**64 - 1)]
    return pd.DataFrame([(f"0x{k:x}", f"0x{c:x}", encode_header(k, c).hex(), len(encode_header(k, c)))
                         for k, c in pairs], columns=["KID", "CTR", "header (hex)", "bytes"])


# --- key schedule, nonce, AAD, tag (§4.4.2, §4.4.3) -------------------------------------------------


def key_schedule_table(suite: CipherSuite | int = DEMO_SUITE, kid: int = DEMO_KID,
                       base_key: bytes = DEMO_BASE_KEY) -> pd.DataFrame:
    """HKDF step by step: secret, the two labels (ASCII part | KID | suite, in hex) and the outputs."""
    suite = CipherSuite(suite)
    secret = HKDF.extract(suite.hash_algorithm(), None, bytes(base_key))
    key_label, salt_label = key_labels(suite, kid)
    key, salt = derive_key_salt(suite, kid, base_key)

    def split(label: bytes) -> str:
        return f"{label[:-10].hex()} | {label[-10:-2].hex()} | {label[-2:].hex()}"

    rows = [
        ("base_key", "input (from key management)", base_key.hex(), len(base_key)),
        ("sframe_secret", "HKDF-Extract(salt = '', base_key)", secret.hex(), len(secret)),
        ("key label", f"{key_label[:-10].decode()!r} | KID | suite", split(key_label), len(key_label)),
        ("sframe_key", f"HKDF-Expand(secret, key label, Nk = {suite.nk})", key.hex(), len(key)),
        ("salt label", f"{salt_label[:-10].decode()!r} | KID | suite", split(salt_label), len(salt_label)),
        ("sframe_salt", f"HKDF-Expand(secret, salt label, Nn = {suite.nn})", salt.hex(), len(salt)),
    ]
    return pd.DataFrame(rows, columns=["value", "how", "hex", "bytes"])


def frame_walkthrough(suite: CipherSuite | int = DEMO_SUITE, kid: int = DEMO_KID, ctr: int = DEMO_CTR,
                      base_key: bytes = DEMO_BASE_KEY, plaintext: bytes = DEMO_PLAINTEXT,
                      metadata: bytes = DEMO_METADATA) -> pd.DataFrame:
    """Encrypt one frame by hand from the primitives and compare with ``SFrameContext.protect``."""
    suite = CipherSuite(suite)
    key, salt = derive_key_salt(suite, kid, base_key)
    header = encode_header(kid, ctr)
    nonce = sframe_nonce(salt, ctr)
    aad = header + metadata
    sealed = suite.aead(key).encrypt(nonce, plaintext, aad)
    body, tag = sealed[: -suite.nt], sealed[-suite.nt :]
    frame = header + sealed
    context = SFrameContext(suite)
    context.add_send_key(kid, base_key)
    rows = [
        ("header", "encode(KID, CTR)", header),
        ("sframe_salt", "from the key schedule", salt),
        ("CTR, 12 bytes", "big-endian, left-padded to Nn", ctr.to_bytes(suite.nn, "big")),
        ("nonce", "salt XOR CTR", nonce),
        ("metadata", "from the application, not sent", metadata),
        ("AAD", "header || metadata", aad),
        ("ciphertext", f"{suite.name} of the plaintext", body),
        ("tag", f"last Nt = {suite.nt} bytes of the AEAD output", tag),
        ("SFrame frame", "header || ciphertext || tag", frame),
    ]
    df = pd.DataFrame([(n, how, v.hex(), len(v)) for n, how, v in rows],
                      columns=["step", "how", "hex", "bytes"])
    df.attrs["same as SFrameContext.protect"] = frame == context.protect(kid, plaintext, metadata, ctr=ctr)
    return df


# --- overhead (Appendix B) ------------------------------------------------------------------------------


#: Mean frame sizes of the lab's own encoders (aiortc's settings; :mod:`e2ee_lab.media.codecs`), measured on
#: the shipped inputs (``tests/test_labs_sframe.py`` measures them again): Opus at aiortc's 96 kbit/s VBR target
#: averages 291 B per 20 ms frame on the 20 s speech sample (116 kbit/s; 345 B while speaking, 149 B in
#: pauses); VP8 at 640x480 and 30 frames/s starts with a 7.8 KB key frame, then delta frames of 1.5 KB on
#: average (361 kbit/s for this scene).
LAB_FRAMES = {"audio: the lab's Opus, 20 ms (291 B)": 291, "video: a VP8 640x480 delta frame (1.5 KB)": 1_500,
              "video: a VP8 640x480 key frame (7.8 KB)": 7_800}


def overhead_table(frames: dict[str, int] | None = None, kid: int = 1, ctr: int = 30_000) -> pd.DataFrame:
    """Bytes SFrame adds per frame (header + tag) for each suite and frame size, and the share;
    by default on the lab's own frames (:data:`LAB_FRAMES`).

    :func:`e2ee_lab.analysis.plots.overhead_figure` draws it.
    """
    frames = frames or LAB_FRAMES
    rows = []
    for label, size in frames.items():
        for suite in CipherSuite:
            extra = overhead(suite, kid, ctr)
            rows.append((label, size, suite.name, extra - suite.nt, suite.nt, extra, 100 * extra / size))
    return pd.DataFrame(rows, columns=["frame", "payload B", "suite", "header B", "tag B", "overhead B",
                                       "overhead %"])


# --- nonce reuse (§4.4.1, §7.4) ---------------------------------------------------------------------------------


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def nonce_reuse_demo(first: bytes = b"meet at the north gate at 9",
                     second: bytes = b"the password is tangerine!!",
                     suite: CipherSuite | int = DEMO_SUITE, kid: int = 1,
                     base_key: bytes = DEMO_BASE_KEY) -> pd.DataFrame:
    """The pitfall: two contexts hold the SAME base key as send key under the SAME KID.

    Both start at CTR 0, so both frames use the same (key, nonce); XOR of the ciphertexts then
    equals XOR of the plaintexts, and anyone who knows or guesses one frame reads the other.
    """
    suite = CipherSuite(suite)
    alice, bob = SFrameContext(suite), SFrameContext(suite)
    alice.add_send_key(kid, base_key)  # wrong: a base key must belong to ONE sender
    bob.add_send_key(kid, base_key)
    frame_a, frame_b = alice.protect(kid, first), bob.protect(kid, second)
    hlen = decode_header(frame_a)[2]
    ct_a, ct_b = frame_a[hlen : -suite.nt], frame_b[hlen : -suite.nt]
    n = min(len(ct_a), len(ct_b))
    rows = [
        ("headers", frame_a[:hlen].hex(), frame_b[:hlen].hex()),
        ("plaintext", first.decode(errors="replace"), second.decode(errors="replace")),
        ("ciphertext (hex)", ct_a.hex(), ct_b.hex()),
        ("ct_A XOR ct_B", _xor(ct_a, ct_b)[:n].hex(), ""),
        ("pt_A XOR pt_B", _xor(first, second)[:n].hex(), ""),
        ("B read from ct_A ⊕ ct_B ⊕ pt_A",
         _xor(_xor(ct_a, ct_b), first)[:n].decode(errors="replace"), ""),
    ]
    df = pd.DataFrame(rows, columns=["", "frame A (Alice)", "frame B (Bob)"]).set_index("")
    df.attrs["xor equal"] = _xor(ct_a, ct_b)[:n] == _xor(first, second)[:n]
    return df


# --- Task 1: decode a header by hand ----------------------------------------------------------------------


def task1_header() -> str:
    """Task 1's header (hex), drawn for this student (``labs.params("03")``): a KID that fits the
    config byte or takes 1-2 extra bytes, and a CTR of 1-3 extra bytes, minimally encoded."""
    rng = params("03").rng("task1 header")
    kid_bytes, ctr_bytes = rng.choice((0, 1, 1, 2)), rng.choice((1, 2, 2, 3))
    kid = rng.randrange(8) if kid_bytes == 0 else rng.randrange(max(8, 1 << 8 * kid_bytes - 8), 1 << 8 * kid_bytes)
    ctr = rng.randrange(max(8, 1 << 8 * ctr_bytes - 8), 1 << 8 * ctr_bytes)
    return encode_header(kid, ctr).hex()


def _header_fields(header: str) -> tuple[int, int, int, int]:
    """(kid, ctr, number of KID bytes, number of CTR bytes) of a header in hex."""
    data = bytes.fromhex(header)
    kid, ctr, length = decode_header(data)
    kid_bytes = (data[0] >> 4 & 7) + 1 if data[0] & 0x80 else 0
    return kid, ctr, kid_bytes, length - 1 - kid_bytes


def _little_endian(value: int, size: int) -> int:
    return int.from_bytes(value.to_bytes(size, "big"), "little") if 0 <= value < 1 << 8 * size else -1


@check
def check_header_decoding(answer: tuple[int, int] | None, header: str) -> Feedback:
    """Task 1: ``answer`` is (kid, ctr) read from this student's ``header`` (:func:`task1_header`);
    the truth is recomputed from the header itself."""
    if answer is None:
        return unanswered("Task 1")
    if not (isinstance(answer, tuple) and len(answer) == 2 and all(type(v) is int for v in answer)):
        return not_yet("give the answer as a tuple of two ints: (kid, ctr).")
    kid, ctr, kid_bytes, ctr_bytes = _header_fields(header)
    got_kid, got_ctr = answer
    if (got_kid, got_ctr) == (kid, ctr):
        return correct(f"{header}: config byte 0x{header[:2]} = {int(header[:2], 16):08b}, "
                       f"KID {kid} ({'in the K field' if not kid_bytes else f'{kid_bytes} extra byte(s)'}), "
                       f"CTR {ctr} ({ctr_bytes} extra byte(s), big-endian).")
    if (got_ctr, got_kid) == (kid, ctr):
        return not_yet("KID and CTR are swapped: the KID bytes come first, then the CTR bytes.")
    if got_kid == int(header[:2], 16):
        return not_yet("the first byte is the config byte, not the KID: its fields X, K, Y and C say where "
                       "the KID and the CTR are and how long they are.")
    if got_kid == kid and ctr_bytes > 1 and got_ctr == _little_endian(ctr, ctr_bytes):
        return not_yet("the CTR's bytes are read in the wrong order: the header stores it big-endian, most "
                       "significant byte first.")
    if got_ctr == int(header[:2], 16) & 7 or got_kid == int(header[:2], 16) >> 4 & 7 and kid_bytes:
        return not_yet("with X (or Y) set to 1, the K (or C) field is not the value but its length in bytes "
                       "minus one; the value follows the config byte.")
    return not_yet("split the config byte into X, K, Y and C first (the table in section 2 does it for the "
                   "RFC's header), then read the KID bytes and the CTR bytes that follow, each big-endian.")


# --- Task 2: which tampering does the receiver reject? -----------------------------------------------------

REASONS = ("accepted", "malformed", "unknown_kid", "replay", "auth")
TASK2_KID, TASK2_CTR = 1, 0x4567  # frame 1's CTR; frame 2 has CTR + 1
TASK2_DESCRIPTIONS = {
    "tag_bit_flipped": "frame 2 with one bit of its last byte (the tag) flipped",
    "payload_byte_changed": "frame 2 with one byte of its ciphertext changed",
    "ctr_changed": "header rewritten with CTR + 1 (still a valid, minimal header)",
    "kid_changed": "header rewritten with KID 2 (the receiver has no key for it)",
    "header_cut": "only the first 2 bytes survive (config byte says 2 CTR bytes follow)",
    "non_minimal_header": "same KID and CTR, but KID 1 written in an extension byte",
    "metadata_changed": "frame 2 untouched, but the receiver's metadata differs by one byte",
    "replayed": "frame 1 again (the receiver already accepted it)",
}
#: Wrong verdicts students commonly give, each with the misconception behind it (never a right one).
_MISTAKES = (
    ("ctr_changed", "replay", "a changed CTR is not a replayed one: the receiver has never accepted this CTR, and "
                              "the CTR feeds the nonce the tag was computed with"),
    ("metadata_changed", "accepted", "the metadata is never sent, but it is part of the AAD (header || metadata) "
                                     "the tag covers"),
    ("kid_changed", "auth", "the receiver looks the KID up before any cryptography: it has no key for KID 2, so "
                            "there is no tag to check"),
    ("header_cut", "auth", "a header that announces more bytes than the frame holds cannot even be parsed; "
                           "nothing is looked up or verified"),
    ("non_minimal_header", "accepted", "the same KID written in more bytes than needed is a second spelling of "
                                       "the header; this parser insists on the minimal one (§4.3)"),
    ("replayed", "accepted", "the receiver already accepted frame 1's CTR: its replay window remembers it"),
)
#: The order in which a receiver gives up, for a hint that names no variant.
_ORDER = ("a receiver gives up at the first failing step: parse the header ('malformed'), look up the KID "
          "('unknown_kid'), check the CTR against the replay window ('replay'), verify the tag over the "
          "ciphertext and the AAD = header || metadata ('auth'); only then 'accepted'")


def tampering_scenario(
    suite: CipherSuite | int = DEMO_SUITE,
) -> tuple[SFrameContext, dict[str, tuple[bytes, bytes]]]:
    """A receiver that has accepted frame 1 (CTR 0x4567), and variants (frame, metadata) made from
    frame 2 (CTR 0x4568, not delivered yet) or, for ``replayed``, frame 1 again."""
    suite = CipherSuite(suite)
    sender, receiver = SFrameContext(suite), SFrameContext(suite)
    sender.add_send_key(TASK2_KID, DEMO_BASE_KEY)
    receiver.add_receive_key(TASK2_KID, DEMO_BASE_KEY)
    first = sender.protect(TASK2_KID, DEMO_PLAINTEXT, DEMO_METADATA, ctr=TASK2_CTR)
    receiver.unprotect(first, DEMO_METADATA)
    frame = sender.protect(TASK2_KID, DEMO_PLAINTEXT, DEMO_METADATA)
    hlen = decode_header(frame)[2]
    body, meta = frame[hlen:], DEMO_METADATA

    def flip(data: bytes, index: int, mask: int = 1) -> bytes:
        return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]

    non_minimal = bytes([0x80 | frame[0] & 0x0F, TASK2_KID]) + frame[1:hlen]  # X=1, K=0, KID byte 01
    variants = {
        "tag_bit_flipped": (flip(frame, len(frame) - 1), meta),
        "payload_byte_changed": (flip(frame, hlen + 2, 0xFF), meta),
        "ctr_changed": (encode_header(TASK2_KID, TASK2_CTR + 2) + body, meta),
        "kid_changed": (encode_header(2, TASK2_CTR + 1) + body, meta),
        "header_cut": (frame[:2], meta),
        "non_minimal_header": (non_minimal + body, meta),
        "metadata_changed": (frame, flip(meta, 0)),
        "replayed": (first, meta),
    }
    return receiver, variants


def tampering_table() -> pd.DataFrame:
    """The variants of Task 2 with a description and the first bytes of each (no verdicts)."""
    _, variants = tampering_scenario()
    rows = [(name, TASK2_DESCRIPTIONS[name], frame[:12].hex() + "…") for name, (frame, _) in variants.items()]
    return pd.DataFrame(rows, columns=["variant", "what changed", "first bytes (hex)"])


@check
def check_tampering(answer: dict[str, str | None] | None) -> Feedback:
    """Task 2: ``answer`` maps each variant to 'accepted' or the drop reason the receiver reports
    (sealed per variant, ``03/T2/<variant>``)."""
    if answer is None or not isinstance(answer, dict) or all(v is None for v in answer.values()):
        return unanswered("Task 2")
    missing = [name for name in TASK2_DESCRIPTIONS if answer.get(name) is None]
    if missing:
        return not_yet(f"still no prediction for: {', '.join(missing)}.")
    unknown = {name: v for name, v in answer.items() if v not in REASONS}
    if unknown:
        return not_yet(f"use only {', '.join(REASONS)}; got {unknown}.")
    given = {name: answer[name] for name in TASK2_DESCRIPTIONS}
    if (message := Sealed("03/T2").opens(given)) is not None:
        return correct(message)
    for name, reason, why in _MISTAKES:
        if given[name] == reason:
            return not_yet(f"'{name}' as '{reason}': {why}.")
    return not_yet(f"not every verdict is right yet. Walk each variant through the receiver's steps: {_ORDER}.")


# --- Task 3: overhead of one frame --------------------------------------------------------------------------

TASK3_SUITE, TASK3_KID, TASK3_CTR = CipherSuite.AES_128_CTR_HMAC_SHA256_80, 0x123, 70_000


@check
def check_overhead(answer: int | None) -> Feedback:
    """Task 3: bytes SFrame adds to one frame for :data:`TASK3_SUITE`, KID 0x123, CTR 70000 (sealed:
    ``03/T3``)."""
    if answer is None:
        return unanswered("Task 3")
    if type(answer) is not int:
        return not_yet("give the number of bytes as an int.")
    seal = Sealed("03/T3")
    if (message := seal.opens(answer)) is not None:
        return correct(message)
    nt, nk = TASK3_SUITE.nt, TASK3_SUITE.nk
    hints = [
        (answer + nt, "that is the header alone: add the tag (Nt bytes)."),
        (answer + 1, "one byte short: did you forget the config byte, or give CTR 70000 only 2 bytes "
                     "(it needs 3: 70000 > 65535)?"),
        (answer - 6, "a 16-byte tag is for the GCM suites; suite 1 has an 80-bit tag (10 bytes)."),
        (answer - nk + nt, f"Nk ({nk}) is the key length, not sent with the frame."),
    ]
    if answer == nt:
        return not_yet("that is the tag alone: the header (config byte + KID + CTR bytes) travels too.")
    for undone, hint in hints:
        if seal.opens(undone) is not None:
            return not_yet(hint)
    return not_yet(f"{answer} bytes is not it: add the config byte, the KID bytes, the CTR bytes (minimal "
                   "big-endian) and the suite's tag length Nt.")


# --- Task 4: a strict header parser (build) -------------------------------------------------------------


def _parser_cases() -> list[tuple[str, bytes]]:
    """Task 4's inputs, drawn for this student: (kind, bytes). Valid headers of every shape, each
    followed by ciphertext bytes, then the malformed ones a receiver must refuse."""
    rng = params("03").rng("task4 cases")
    valid = []
    for kid_bytes, ctr_bytes in ((0, 0), (0, 1), (1, 0), (1, 2), (2, 3), (3, 1), (0, 5), (8, 8)):
        kid = rng.randrange(8) if not kid_bytes else rng.randrange(max(8, 1 << 8 * kid_bytes - 8), 1 << 8 * kid_bytes)
        ctr = rng.randrange(8) if not ctr_bytes else rng.randrange(max(8, 1 << 8 * ctr_bytes - 8), 1 << 8 * ctr_bytes)
        valid.append(("valid", encode_header(kid, ctr) + rng.randbytes(rng.randrange(0, 24))))
    kid, ctr = rng.randrange(256, 65536), rng.randrange(256, 65536)
    full = encode_header(kid, ctr)
    small_kid, small_ctr = rng.randrange(8), rng.randrange(8, 256)
    malformed = [
        ("empty", b""),
        ("truncated", full[:-1]),
        ("truncated", full[:2]),
        ("non-minimal KID", bytes([0x88 | 0, small_kid]) + encode_header(0, small_ctr)[1:]),  # X=1, K=0, KID < 8
        ("non-minimal CTR", bytes([small_kid << 4 | 0x09, 0, small_ctr])),  # Y=1, C=1: a leading zero byte
    ]
    return valid + malformed


def probe_header_parser(func) -> list[dict]:
    """Task 4's probe: the student's parser on every case; its return value, or whether what it raised
    was a ValueError (the receiver's typed refusal) or anything else (a crash)."""
    out = []
    for kind, data in _parser_cases():
        try:
            out.append({"kind": kind, "value": plain_copy(func(data))})
        except ValueError:
            out.append({"kind": kind, "raised": "ValueError"})
        except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
            out.append({"kind": kind, "raised": type(exc).__name__})
    return out


_PARSER_HINTS = {
    "empty": "an empty frame has no config byte: refuse it with a ValueError, do not let an IndexError escape.",
    "truncated": "when the config byte announces more KID or CTR bytes than the frame holds, the header is "
                 "truncated: raise ValueError (slicing past the end silently returns fewer bytes).",
    "non-minimal KID": "a KID below 8 belongs in the K field: an extension byte for it is a second spelling of "
                       "the same header, which §4.3 forbids (MUST use the minimum number of bytes). Refuse it.",
    "non-minimal CTR": "a CTR written with a leading zero byte is a second spelling of the same header (§4.3: "
                       "the minimum number of bytes); refuse it.",
}


@check(probe=probe_header_parser)
def check_header_parser(answer) -> Feedback:
    """Task 4 (build): the student's ``parse_header(data) -> (kid, ctr, header_length)`` on this student's
    valid headers (compared with :func:`~e2ee_lab.crypto.sframe.decode_header`) and malformed ones
    (a ValueError expected)."""
    if answer is None:
        return unanswered("Task 4")
    if not isinstance(answer, Probed):
        return not_yet("define parse_header(data) as a function and pass the function itself to the check.")
    outputs = answer.outputs
    cases = _parser_cases()
    if not isinstance(outputs, list) or len(outputs) != len(cases):
        return not_yet("the check could not run parse_header on its cases; pass the function itself.")
    for (kind, data), got in zip(cases, outputs):
        if not isinstance(got, dict):
            return not_yet("the check could not read what parse_header did; pass the function itself.")
        if kind == "valid":
            want = decode_header(data)
            if got.get("value") != want:
                shown = got.get("value", f"raised {got.get('raised')}")
                return not_yet(f"for the frame starting {data[:12].hex()} your parser gave {shown}: return "
                               "(kid, ctr, header_length) as ints, reading the extension bytes big-endian and "
                               "ignoring the ciphertext after the header.")
        elif got.get("raised") != "ValueError":
            what = f"returned {got['value']}" if "value" in got else f"raised {got.get('raised')}"
            return not_yet(f"for {data.hex() or 'an empty frame'} your parser {what}. {_PARSER_HINTS[kind]}")
    return correct("every valid header parsed to (kid, ctr, length), and every empty, truncated or non-minimal "
                   "one refused with a ValueError: a receiver counts such a frame as malformed and drops it "
                   "before any key lookup or decryption.")
