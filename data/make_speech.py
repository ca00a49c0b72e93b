"""Generate data/speech.wav and data/speech.json: a short synthetic speech sample with ground truth.

Each phrase is synthesised on its own with espeak-ng, resampled to 16 kHz with PyAV, trimmed to
where its 10 ms energy first and last exceeds a threshold, scaled, and placed on a timeline with
fixed pauses between phrases. The ground-truth speech segments in the JSON are exactly where the
trimmed phrases were placed, so they come from the synthesis layout and the energy threshold. A
faint seeded noise floor stands in for a microphone's self-noise, so pauses have a finite RFC 6464
audio level instead of digital silence.

Needs the espeak-ng program (Debian: ``apt-get install espeak-ng``) and the project's venv (numpy,
av). Run from the repository root:

    .venv/bin/python data/make_speech.py
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import wave
from pathlib import Path

import av
import numpy as np

RATE = 16_000  # output sample rate (Hz)
VOICE, SPEED_WPM, PITCH = "en-us", 170, 45
LEAD_IN_S, TAIL_S = 0.5, 0.6  # silence before the first / after the last phrase
PAUSES_S = (1.2, 0.8, 1.8, 1.0)  # pauses between consecutive phrases
TRIM_THRESHOLD_DBOV = -45.0  # a 10 ms window louder than this counts as sound when trimming
PEAK_DBOV = -3.0  # the loudest sample of the whole sample after scaling
NOISE_FLOOR_DBOV = -62.0  # RMS of the added white noise
NOISE_SEED = 6464
PHRASES = (
    "Good morning everyone, this is Alice from finance.",
    "The Example Systems deal closes on the fourteenth of May.",
    "The offer price is forty two dollars per share.",
    "Please keep these numbers confidential until the announcement.",
    "I will send the final figures after the call.",
)
OUT_DIR = Path(__file__).resolve().parent


def synthesise(text: str) -> np.ndarray:
    """One phrase as float samples in [-1, 1] at :data:`RATE` Hz."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phrase.wav"
        subprocess.run(
            ["espeak-ng", "-v", VOICE, "-s", str(SPEED_WPM), "-p", str(PITCH), "-w", str(path), text],
            check=True,
        )
        container = av.open(str(path))
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        chunks = []
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        container.close()
    return np.concatenate(chunks).astype(np.float64) / 32768.0


def trim(samples: np.ndarray) -> np.ndarray:
    """Cut leading and trailing 10 ms windows quieter than :data:`TRIM_THRESHOLD_DBOV`."""
    win = RATE // 100
    count = len(samples) // win
    rms = np.sqrt(np.mean(samples[: count * win].reshape(count, win) ** 2, axis=1))
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-9)) > TRIM_THRESHOLD_DBOV)
    return samples[loud[0] * win : (loud[-1] + 1) * win]


def espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], check=True, capture_output=True, text=True).stdout
    return out.split(" Data at")[0].strip()


def build() -> tuple[np.ndarray, list[dict]]:
    """Lay the trimmed phrases out with pauses; return int16 samples and the segment list."""
    phrases = [trim(synthesise(text)) for text in PHRASES]
    gaps = (LEAD_IN_S, *PAUSES_S)
    pieces, segments, t = [], [], 0
    for text, gap, speech in zip(PHRASES, gaps, phrases):
        pieces += [np.zeros(int(gap * RATE)), speech]
        start = t + int(gap * RATE)
        segments.append({"start": start / RATE, "end": (start + len(speech)) / RATE, "text": text})
        t = start + len(speech)
    pieces.append(np.zeros(int(TAIL_S * RATE)))
    signal = np.concatenate(pieces)
    signal *= 10 ** (PEAK_DBOV / 20) / np.max(np.abs(signal))
    noise = np.random.default_rng(NOISE_SEED).standard_normal(len(signal)) * 10 ** (NOISE_FLOOR_DBOV / 20)
    pcm = np.clip(np.round((signal + noise) * 32767), -32768, 32767).astype(np.int16)
    return pcm, segments


def main() -> None:
    pcm, segments = build()
    with wave.open(str(OUT_DIR / "speech.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    meta = {
        "file": "speech.wav",
        "sample_rate": RATE,
        "channels": 1,
        "duration": len(pcm) / RATE,
        "segments": segments,
        "text": " ".join(PHRASES),
        "layout": {"lead_in_s": LEAD_IN_S, "pauses_s": list(PAUSES_S), "tail_s": TAIL_S},
        "trim_threshold_dbov": TRIM_THRESHOLD_DBOV,
        "peak_dbov": PEAK_DBOV,
        "noise_floor_dbov": NOISE_FLOOR_DBOV,
        "noise_seed": NOISE_SEED,
        "synthesis": {"tool": espeak_version(), "voice": VOICE, "speed_wpm": SPEED_WPM, "pitch": PITCH},
        "generator": "data/make_speech.py",
    }
    (OUT_DIR / "speech.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote speech.wav ({len(pcm) / RATE:.2f} s, {len(segments)} phrases) and speech.json")


if __name__ == "__main__":
    main()
