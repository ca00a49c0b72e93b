"""Synthetic camera scenes: a name badge and a confidential line a person would call sensitive.

Every participant's "camera" shows a badge with a clearly fictional name and team (``ALICE /
Finance``), a red band with a line of ``CONFIDENTIAL: ...`` text, a ball that bounces across the
picture (motion, so VP8 has real delta frames to code) and a frame counter. The text is large
enough to stay readable after VP8 at the lab's sizes, which is the point: whoever decodes the
frames (the subscriber always, the SFU only without end-to-end encryption) can read it.

The confidential line is a template per participant whose blanks the seed fills
(:func:`secret_line`): seed 0, the seed of the recordings in ``data/`` and of the shipped notebooks,
fills each blank with its first choice, any other seed draws them, so a lab that gives each student
their own seed gives each a line of their own to read off the SFU's picture. Frames are a pure function
of ``(participant, seed, width, height, fps, index)``: the same arguments give the same pixels on
every run. Text is rasterised by Pillow with the DejaVu fonts
that matplotlib ships, so no system fonts are needed. Sizes: ``ci`` 320x240 at 15 fps, ``full``
640x480 at 30 fps (:func:`video_size`).
"""

from __future__ import annotations

import fractions
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import av
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from e2ee_lab.config import Size, lab_size

#: Fictional participants (badge name, team); participant ``i`` uses entry ``i % len``.
PARTICIPANTS: tuple[tuple[str, str], ...] = (
    ("ALICE", "Finance"),
    ("BOB", "Legal"),
    ("CAROL", "Research"),
    ("DAVE", "Sales"),
    ("ERIN", "Security"),
    ("FRANK", "Operations"),
)

#: Blanks of the confidential lines (fictional companies, products and figures).
_COMPANIES = ("Example Systems", "Sample Works", "Demo Holdings", "Placeholder Labs", "Mock Industries",
              "Fictive Energy", "Dummy Motors", "Specimen Foods")
_MONTHS = ("May", "March", "June", "April", "July", "August", "October", "January")
_DAYS = ("14", "3", "9", "21", "27", "6", "18", "30")

#: The sensitive line each participant's camera shows, as (template, choices per blank); participant
#: ``i`` uses entry ``i % len``. :func:`secret_line` fills the blanks.
SECRETS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("{} deal closes {} {}", (_COMPANIES, _DAYS, _MONTHS)),
    ("settlement offer {}M, do not forward", (("2.4", "1.7", "3.1", "0.9", "5.6", "4.2", "7.3", "6.8"),)),
    ("prototype {} fails at {} C", (("X-17", "K-42", "Z-9", "Q-88", "M-31", "R-5", "T-64", "V-20"),
                                    ("80", "65", "95", "72", "110", "58", "87", "104"))),
    ("Q{} sales target cut by {} percent", (("3", "1", "2", "4"), ("12", "8", "15", "20", "6", "25", "18", "9"))),
    ("vault door code {}-{}-{}-{}", tuple((d, *(x for x in "0123456789" if x != d)) for d in "4719")),
    ("plant {} closes in {}", (("3", "7", "2", "5", "9", "4", "8", "6"),
                               ("November", "September", "December", "February") + _MONTHS[:4])),
)


def secret_line(participant: int, seed: int = 0) -> str:
    """The confidential line of ``participant``'s camera for ``seed`` (without "CONFIDENTIAL: ").

    Seed 0 fills every blank of the participant's template with its first choice; any other seed
    draws each blank at random, the same for the same (participant, seed).
    """
    template, blanks = SECRETS[participant % len(SECRETS)]
    if seed == 0:
        return template.format(*(choices[0] for choices in blanks))
    rng = np.random.default_rng([seed, participant, 0x5EC2E7])
    return template.format(*(choices[int(rng.integers(len(choices)))] for choices in blanks))


_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


class VideoSize(NamedTuple):
    """Picture size and frame rate of a scene."""

    width: int
    height: int
    fps: int


#: Lab sizes: ``ci`` for tests, ``full`` for the classroom.
VIDEO_SIZES: dict[Size, VideoSize] = {
    "ci": VideoSize(320, 240, 15),
    "full": VideoSize(640, 480, 30),
}


def video_size(size: Size | None = None) -> VideoSize:
    """Width, height and fps for ``size`` (default: ``E2EE_LAB_SIZE`` via :func:`lab_size`)."""
    return VIDEO_SIZES[size or lab_size()]


@lru_cache(maxsize=32)
def _font(px: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(_FONT_DIR / name), size=max(px, 6))


def _fit_font(text: str, max_width: int, start_px: int) -> ImageFont.FreeTypeFont:
    """The largest bold font, at most ``start_px`` tall, in which ``text`` fits ``max_width``."""
    px = start_px
    while px > 6 and _font(px).getlength(text) > max_width:
        px -= 1
    return _font(px)


class Scene:
    """One participant's deterministic camera.

    Args:
        participant: index into :data:`PARTICIPANTS` / :data:`SECRETS` (wraps around).
        seed: varies the background colour, the ball's path and the confidential line's blanks
            (:func:`secret_line`); same seed, same frames.
        width, height: picture size in pixels (even numbers, as yuv420p needs).
        fps: frame rate; frame ``i`` is captured at ``i / fps`` seconds.

    Raises:
        ValueError: a size that is odd, too small (< 64x48) or a non-positive fps.
    """

    def __init__(
        self, participant: int = 0, *, seed: int = 0, width: int = 320, height: int = 240, fps: int = 15
    ) -> None:
        if width < 64 or height < 48 or width % 2 or height % 2:
            raise ValueError(f"scene size must be even and at least 64x48, not {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.participant = participant
        self.seed = seed
        self.width, self.height, self.fps = width, height, fps
        self.name, self.team = PARTICIPANTS[participant % len(PARTICIPANTS)]
        self.secret = "CONFIDENTIAL: " + secret_line(participant, seed)
        rng = np.random.default_rng([seed, participant])
        self._background = tuple(int(c) for c in rng.integers(20, 90, size=3))
        self._ball_colour = tuple(int(c) for c in rng.integers(150, 256, size=3))
        self._phase = float(rng.uniform(0.0, 1.0))
        self._speed = float(rng.uniform(0.15, 0.3))  # picture widths per second
        self._base = self._render_base()

    @property
    def badge(self) -> str:
        """The badge text, e.g. ``"ALICE / Finance"``."""
        return f"{self.name} / {self.team}"

    def _render_base(self) -> Image.Image:
        """The static part: background, badge and the confidential band."""
        w, h = self.width, self.height
        img = Image.new("RGB", (w, h), self._background)
        draw = ImageDraw.Draw(img)
        pad = max(w // 40, 2)
        name_font, team_font = _font(h // 7), _font(h // 14, bold=False)
        badge_w = int(max(name_font.getlength(self.name), team_font.getlength(self.team))) + 4 * pad
        badge_h = h // 7 + h // 14 + 4 * pad
        draw.rounded_rectangle((pad, pad, pad + badge_w, pad + badge_h), radius=pad, fill=(245, 245, 240))
        draw.text((3 * pad, 2 * pad), self.name, font=name_font, fill=(10, 30, 90))
        draw.text((3 * pad, 2 * pad + h // 7 + pad), self.team, font=team_font, fill=(60, 60, 60))
        band_top, line_h = int(h * 0.40), h // 9
        draw.rectangle((0, band_top, w, band_top + 2 * line_h + 2 * pad), fill=(170, 20, 20))
        head, body = self.secret.split(": ", 1)
        draw.text((pad, band_top + pad), head + ":", font=_font(int(line_h * 0.8)), fill=(255, 220, 0))
        body_font = _fit_font(body, w - 2 * pad, int(line_h * 0.8))
        draw.text((pad, band_top + pad + line_h), body, font=body_font, fill=(255, 255, 255))
        return img

    def _ball_position(self, index: int) -> tuple[int, int]:
        """Centre of the ball in frame ``index``: a triangle wave across the lower third."""
        t = index / self.fps
        r = self.height // 12
        travel = self.width - 2 * r
        x = (self._phase + self._speed * t) % 2.0
        x = x if x <= 1.0 else 2.0 - x
        y = self.height * 0.78 + self.height * 0.08 * np.sin(2 * np.pi * 0.5 * t + 6.28 * self._phase)
        return r + int(round(x * travel)), int(round(y))

    def rgb(self, index: int) -> np.ndarray:
        """Frame ``index`` as an ``(height, width, 3)`` uint8 RGB array."""
        img = self._base.copy()
        draw = ImageDraw.Draw(img)
        cx, cy = self._ball_position(index)
        r = self.height // 12
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self._ball_colour)
        counter_font = _font(self.height // 16, bold=False)
        corner = (self.width - self.width // 4, self.height // 40)
        draw.text(corner, f"#{index:05d}", font=counter_font, fill=(230, 230, 230))
        return np.asarray(img, dtype=np.uint8)

    def video_frame(self, index: int) -> av.VideoFrame:
        """Frame ``index`` as a yuv420p :class:`av.VideoFrame` with ``pts = index``, time base 1/fps."""
        return to_video_frame(self.rgb(index), pts=index, fps=self.fps)

    def frames(self, count: int, start: int = 0) -> Iterator[av.VideoFrame]:
        """``count`` consecutive frames from ``start`` as yuv420p :class:`av.VideoFrame`."""
        for index in range(start, start + count):
            yield self.video_frame(index)


def to_video_frame(rgb: np.ndarray, *, pts: int | None = None, fps: int | None = None) -> av.VideoFrame:
    """Convert an ``(h, w, 3)`` uint8 RGB array to a yuv420p :class:`av.VideoFrame`.

    ``pts`` and ``fps`` (time base ``1/fps``) are set when given.

    Raises:
        ValueError: the array is not ``(h, w, 3)`` uint8.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (h, w, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
    if pts is not None:
        frame.pts = pts
    if fps is not None:
        frame.time_base = fractions.Fraction(1, fps)
    return frame


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Convert any :class:`av.VideoFrame` to an ``(h, w, 3)`` uint8 RGB array."""
    return frame.to_ndarray(format="rgb24")
