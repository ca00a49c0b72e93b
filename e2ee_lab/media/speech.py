"""Speech source: the committed speech sample as 20 ms chunks with ground truth and RFC 6464 levels.

``data/speech.wav`` (16 kHz mono, about 20 s, made by ``data/make_speech.py`` with espeak-ng) is
resampled once to 48 kHz with PyAV's ``AudioResampler`` (Opus runs at 48 kHz, RFC 7587 §4.1)
and looped for calls of any length. Each 20 ms chunk carries three facts about itself:

- ``speaking``: ground truth from ``data/speech.json`` (the chunk's midpoint lies in a phrase);
- ``audio_level``: the RFC 6464 §3 level, 0..127 meaning 0..-127 dBov, from the chunk's RMS
  relative to the full scale of 16-bit PCM (digital silence is 127);
- ``voice_activity``: the sender's voice-activity flag (the RFC 6464 V bit), here an energy
  detector: level at most :data:`VAD_MAX_LEVEL` in this chunk or one of the previous
  :data:`VAD_HANGOVER` chunks.

The level and the V bit travel in the clear RTP header extension even when the media is
end-to-end encrypted, which is why the lab keeps the ground truth to compare against.
"""

from __future__ import annotations

import json
import math
import wave
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 48_000  #: Opus sample rate, RFC 7587 §4.1
FRAME_MS = 20  #: one Opus frame
FRAME_SAMPLES = AUDIO_RATE * FRAME_MS // 1000  #: 960 samples per chunk
FULL_SCALE = 32768.0  #: overload point of 16-bit PCM (0 dBov)
SILENCE_LEVEL = 127  #: RFC 6464 §3: digital silence MUST be 127
VAD_MAX_LEVEL = 50  #: a chunk at -50 dBov or louder counts as voice
VAD_HANGOVER = 4  #: chunks the V bit stays set after the energy drops (80 ms)
DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def audio_level(pcm: np.ndarray) -> int:
    """RFC 6464 §3 audio level of int16 samples: ``round(-20 log10(rms / 32768))`` clamped to 0..127.

    Digital silence (all zeros, or no samples) is 127.
    """
    if len(pcm) == 0:
        return SILENCE_LEVEL
    rms = math.sqrt(float(np.mean(np.square(pcm, dtype=np.float64))))
    if rms == 0.0:
        return SILENCE_LEVEL
    return int(min(SILENCE_LEVEL, max(0, round(-20.0 * math.log10(rms / FULL_SCALE)))))


@dataclass(frozen=True, eq=False)
class SpeechSample:
    """The speech sample at 48 kHz with its ground truth (from ``speech.json``)."""

    pcm: np.ndarray  # int16 mono samples at ``sample_rate``
    sample_rate: int
    segments: tuple[tuple[float, float], ...]  # (start, end) seconds of each phrase
    phrases: tuple[str, ...]  # the text of each phrase, same order
    source: dict = field(repr=False)  # the whole speech.json

    @property
    def duration(self) -> float:
        """Length of one loop in seconds."""
        return len(self.pcm) / self.sample_rate

    def speaking_at(self, t: float) -> bool:
        """Ground truth: is ``t`` seconds (taken modulo the loop) inside a phrase?"""
        t = t % self.duration
        return any(start <= t < end for start, end in self.segments)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path.name}: expected 16-bit mono PCM")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16), wav.getframerate()


def _resample(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample int16 mono with FFmpeg's swresample (PyAV ``AudioResampler``)."""
    if rate == target:
        return pcm.copy()
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=target)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    data = np.concatenate(out)
    expected = round(len(pcm) * target / rate)
    return np.pad(data, (0, max(0, expected - len(data))))[:expected]


@lru_cache(maxsize=4)
def load_speech(path: Path | None = None, rate: int = AUDIO_RATE) -> SpeechSample:
    """Load ``speech.wav`` + ``speech.json`` (default: the repository's ``data/``) at ``rate`` Hz.

    Raises:
        FileNotFoundError: the WAV or its JSON is missing.
        ValueError: the WAV is not 16-bit mono or disagrees with the JSON's sample rate.
    """
    wav_path = Path(path) if path else DATA_DIR / "speech.wav"
    meta = json.loads(wav_path.with_suffix(".json").read_text())
    pcm, wav_rate = _read_wav(wav_path)
    if wav_rate != meta["sample_rate"]:
        raise ValueError(f"{wav_path.name} is {wav_rate} Hz but its JSON says {meta['sample_rate']}")
    segments = tuple((float(s["start"]), float(s["end"])) for s in meta["segments"])
    phrases = tuple(s["text"] for s in meta["segments"])
    return SpeechSample(_resample(pcm, wav_rate, rate), rate, segments, phrases, meta)


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """20 ms of speech as captured by a participant's microphone, with its ground truth."""

    index: int  # chunk number since the call started
    pcm: np.ndarray  # int16 mono samples
    sample_rate: int
    capture_time: float  # seconds since the call started
    speaking: bool  # ground truth: inside a phrase of the sample
    audio_level: int  # RFC 6464 level, 0..127 (-dBov)
    voice_activity: bool  # the sender's VAD flag (RFC 6464 V bit)

    def to_av_frame(self) -> av.AudioFrame:
        """The chunk as an s16 mono :class:`av.AudioFrame` with ``pts = index * len(pcm)``."""
        frame = av.AudioFrame.from_ndarray(self.pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.index * len(self.pcm)
        return frame


class SpeechSource:
    """A participant's microphone: the speech sample, looped, in 20 ms chunks.

    Args:
        sample: the sample to play (default: :func:`load_speech`).
        offset_s: where in the sample chunk 0 starts, so participants need not talk in unison.
    """

    def __init__(self, sample: SpeechSample | None = None, *, offset_s: float = 0.0) -> None:
        self.sample = sample or load_speech()
        self.frame_samples = self.sample.sample_rate * FRAME_MS // 1000
        self._offset = int(round(offset_s * self.sample.sample_rate))

    @property
    def offset_samples(self) -> int:
        """Where in the sample chunk 0 starts, in samples."""
        return self._offset

    def _pcm(self, index: int) -> np.ndarray:
        n = len(self.sample.pcm)
        start = (self._offset + index * self.frame_samples) % n
        return np.take(self.sample.pcm, np.arange(start, start + self.frame_samples), mode="wrap")

    def level(self, index: int) -> int:
        """RFC 6464 level of chunk ``index`` (chunks before 0 are silence)."""
        return audio_level(self._pcm(index)) if index >= 0 else SILENCE_LEVEL

    def chunk(self, index: int) -> AudioChunk:
        """Chunk ``index`` (0-based; any index, the sample loops)."""
        recent = [self.level(i) for i in range(index - VAD_HANGOVER, index)]
        return self._chunk(index, self._pcm(index), recent)

    def chunks(self, count: int, start: int = 0) -> Iterator[AudioChunk]:
        """``count`` consecutive chunks from ``start`` (each chunk's level computed once, not once
        per chunk whose V bit it holds up)."""
        recent = deque((self.level(i) for i in range(start - VAD_HANGOVER, start)), maxlen=VAD_HANGOVER)
        for index in range(start, start + count):
            chunk = self._chunk(index, self._pcm(index), recent)
            recent.append(chunk.audio_level)
            yield chunk

    def pcm(self, count: int, start: int = 0) -> np.ndarray:
        """The samples of ``count`` consecutive chunks from ``start``, back to back (the chunks' ``pcm``)."""
        first = self._offset + start * self.frame_samples
        return np.take(self.sample.pcm, np.arange(first, first + max(count, 0) * self.frame_samples), mode="wrap")

    def _chunk(self, index: int, pcm: np.ndarray, recent) -> AudioChunk:
        """Chunk ``index`` of samples ``pcm``; ``recent``: the levels of the :data:`VAD_HANGOVER` chunks before it."""
        rate = self.sample.sample_rate
        mid = (self._offset + index * self.frame_samples + self.frame_samples / 2) / rate
        level = audio_level(pcm) if index >= 0 else SILENCE_LEVEL  # as level(): before 0 is silence
        return AudioChunk(
            index=index,
            pcm=pcm,
            sample_rate=rate,
            capture_time=index * FRAME_MS / 1000,
            speaking=self.sample.speaking_at(mid),
            audio_level=level,
            voice_activity=min(level, *recent) <= VAD_MAX_LEVEL,
        )


def chunk_count(duration_s: float) -> int:
    """Number of 20 ms chunks in ``duration_s`` seconds."""
    return int(round(duration_s * 1000 / FRAME_MS))
