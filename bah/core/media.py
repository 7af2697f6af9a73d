"""Decoding videos and their audio with PyAV, shared by every stage.

The decoded frame count (not the container's metadata, which webcam recordings often get
wrong) is the frame count N every stage uses. Frames are streamed, never held all at once.

Frame time: browser recordings are variable-frame-rate, so frame i is not at i/fps. The
manifest records each decoded frame's presentation time (``probe_times``), and every stage
that turns frames into time or time into frames asks :func:`frame_times` for them.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from bah.core.files import atomic_path

log = logging.getLogger(__name__)


class MediaError(RuntimeError):
    """A video that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class MediaInfo:
    n_frames: int  # frames actually decoded
    avg_fps: float
    real_fps: float  # the stream's guessed (real) base rate
    duration: float  # seconds, from the decoded timestamps when available
    width: int  # after rotation
    height: int
    rotation: int  # degrees the frames are turned to display upright (0/90/180/270)
    vfr: bool
    has_audio: bool
    audio_rate: Optional[int]
    audio_duration: Optional[float]
    codec: str
    container_frames: int  # what the container claims (0 when unknown)
    decode_errors: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _open(path: os.PathLike):
    import av

    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path))
    except Exception as exc:  # PyAV raises several error classes for unreadable input
        raise MediaError(f"{path}: cannot open as a media file ({type(exc).__name__}: {exc})") from None


def _rate(value) -> float:
    try:
        return float(value) if value else 0.0
    except (TypeError, ZeroDivisionError):
        return 0.0


def _rotation(stream, first_frame=None) -> int:
    rot = None
    if first_frame is not None:
        rot = getattr(first_frame, "rotation", None)
    if not rot:
        meta = stream.metadata.get("rotate") if stream.metadata else None
        if meta:
            try:
                rot = -int(float(meta))  # legacy tag is clockwise; display-matrix rotation is counter-clockwise
            except ValueError:
                rot = 0
    return int(round((rot or 0) / 90.0)) * 90 % 360


def _upright(img: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded frame so it displays upright (rotation counter-clockwise in degrees)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k=k)) if k else img


def probe(path: os.PathLike, count_frames: bool = True) -> MediaInfo:
    """Facts about one video file. Decodes every frame when ``count_frames`` (the reliable count)."""
    return _probe(path, count_frames)[0]


def probe_times(path: os.PathLike) -> Tuple[MediaInfo, np.ndarray]:
    """``probe`` plus the presentation time (float64 seconds) of every decoded frame.

    Times are on the container clock, whose zero is where players start (and where the
    audio track that ``read_audio`` returns starts, for files whose streams begin together),
    in decode-output (presentation) order. A frame without a timestamp gets one
    interpolated from its neighbours.
    """
    return _probe(path, True)


def _video_stream(container, path: Path):
    """The first video stream, decoded with FFmpeg's own threading; MediaError when there is none."""
    if not container.streams.video:
        raise MediaError(f"{path}: no video stream")
    vs = container.streams.video[0]
    vs.thread_type = "AUTO"
    return vs


def _probe(path: os.PathLike, count_frames: bool) -> Tuple[MediaInfo, np.ndarray]:
    path = Path(path)
    container = _open(path)
    try:
        vs = _video_stream(container, path)
        avg_fps = _rate(vs.average_rate)
        real_fps = _rate(vs.guessed_rate) or _rate(vs.base_rate) or avg_fps
        container_frames = int(vs.frames or 0)
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_rate = int(audio.rate) if audio is not None and audio.rate else None
        audio_duration = None
        if audio is not None and audio.duration is not None and audio.time_base is not None:
            audio_duration = float(audio.duration * audio.time_base)
        n, errors, rotation = 0, 0, 0
        width, height = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
        pts = []
        frame_pts: List[Optional[int]] = []
        if count_frames:
            try:
                for frame in container.decode(vs):
                    if n == 0:
                        rotation = _rotation(vs, frame)
                        width, height = frame.width, frame.height
                    if frame.pts is not None:
                        pts.append(frame.pts)
                    frame_pts.append(frame.pts)
                    n += 1
            except Exception as exc:  # a truncated file: keep what decoded, record the error
                errors += 1
                log.warning("%s: decoding stopped after %d frames (%s)", path, n, exc)
            if n == 0:
                raise MediaError(f"{path}: no decodable video frame")
        else:
            rotation = _rotation(vs)
            n = container_frames
        if rotation in (90, 270):
            width, height = height, width
        tb = float(vs.time_base) if vs.time_base else 0.0
        duration = 0.0
        vfr = False
        if len(pts) >= 2 and tb > 0:
            p = np.sort(np.asarray(pts, dtype=np.float64)) * tb
            d = np.diff(p)
            step = np.median(d) if len(d) else 0.0
            duration = float(p[-1] - p[0] + (step if step > 0 else 0.0))
            vfr = bool(step > 0 and np.max(np.abs(d - step)) > 0.5 * step)
            if duration > 0:
                avg_fps = n / duration
        elif vs.duration is not None and tb > 0:
            duration = float(vs.duration * tb)
        elif container.duration:
            duration = container.duration / 1e6
        if real_fps and avg_fps and not vfr and abs(real_fps - avg_fps) / real_fps > 0.05:
            vfr = True
        start = container.start_time / 1e6 if container.start_time is not None else 0.0
        times = _times(frame_pts, tb, start, avg_fps)
        info = MediaInfo(
            n_frames=n, avg_fps=float(avg_fps), real_fps=float(real_fps), duration=duration,
            width=int(width), height=int(height), rotation=rotation, vfr=vfr,
            has_audio=audio is not None, audio_rate=audio_rate, audio_duration=audio_duration,
            codec=vs.codec_context.name, container_frames=container_frames, decode_errors=errors,
        )
        return info, times
    finally:
        container.close()


def _times(frame_pts: List[Optional[int]], time_base: float, start: float, fps: float) -> np.ndarray:
    """Seconds per decoded frame from its pts; missing pts are interpolated (i/fps without any)."""
    n = len(frame_pts)
    if n == 0:
        return np.zeros(0, np.float64)
    have = np.array([p is not None for p in frame_pts])
    if time_base <= 0 or not have.any():
        return np.arange(n, dtype=np.float64) / (fps or 1.0)
    idx = np.flatnonzero(have)
    known = np.array([frame_pts[i] for i in idx], dtype=np.float64) * time_base - start
    if have.all():
        return known
    step = 1.0 / fps if fps else 0.0
    times = np.interp(np.arange(n), idx, known)
    # before the first / after the last known pts: extend by the average step
    times[: idx[0]] = known[0] - step * (idx[0] - np.arange(idx[0]))
    times[idx[-1] + 1:] = known[-1] + step * (np.arange(idx[-1] + 1, n) - idx[-1])
    return times


def frame_times(n_frames: int, fps: float, recorded: Optional[os.PathLike] = None, *, compat: bool = False,
                where: str = "") -> np.ndarray:
    """The time in seconds of each of the ``n_frames`` frames of one video.

    ``recorded`` is the per-video ``.npy`` the manifest wrote (``bah.core.layout.frame_times_path``).
    ``compat`` gives the original's ``i / fps`` whatever was recorded. Without a recording
    (an old manifest, a file of another length) this falls back to ``i / fps`` with a warning
    naming ``where``: right for constant-frame-rate files only.
    """
    n = int(n_frames)
    if not compat and recorded is not None:
        path = Path(recorded)
        if path.is_file():
            times = np.load(path, allow_pickle=False)
            if times.shape == (n,) and np.isfinite(times).all():
                return times.astype(np.float64, copy=False)
            log.warning("%s: recorded frame times %s hold %s values, expected %d; using i/fps",
                        where or path, path, times.shape, n)
        else:
            log.warning("%s: no recorded frame times (%s; rebuild the manifest); using i/fps, "
                        "wrong for variable-frame-rate files", where or path, path)
    if not fps or not math.isfinite(fps) or fps <= 0:
        raise MediaError(f"{where}: unknown frame rate {fps!r}")
    return np.arange(n, dtype=np.float64) / float(fps)


def frames_at(times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the frame shown at each time ``t``: the last frame whose time is <= t (0 before the first)."""
    return np.clip(np.searchsorted(np.asarray(times), np.asarray(t, dtype=np.float64), side="right") - 1,
                   0, max(len(times) - 1, 0))


def iter_frames(path: os.PathLike, rotate: bool = True) -> Iterator[np.ndarray]:
    """Stream the frames of a video as upright RGB uint8 arrays (H, W, 3)."""
    path = Path(path)
    container = _open(path)
    try:
        vs = _video_stream(container, path)
        rotation = None
        for frame in container.decode(vs):
            if rotation is None:
                rotation = _rotation(vs, frame) if rotate else 0
            yield _upright(frame.to_ndarray(format="rgb24"), rotation)
    finally:
        container.close()


def read_audio(path: os.PathLike, sample_rate: int = 16000) -> Optional[np.ndarray]:
    """The first audio track as float32 mono at ``sample_rate``; None when the file has none."""
    import av

    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            log.warning("%s: audio decoding stopped early (%s)", path, exc)
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.clip(np.concatenate(chunks).astype(np.float32, copy=False), -1.0, 1.0)
    finally:
        container.close()


UNREAD = object()  # a lazily read attribute not read yet (None is a valid value: no audio track)


class LazyAudio:
    """``audio()``: the 16 kHz mono track of ``self.path``, decoded at most once, None when the
    file has none; ``set_audio()`` provides it instead (tests, callers that already decoded it).
    For dataclasses with ``video_id``, ``path`` and an ``_audio`` field defaulting to ``UNREAD``."""

    def audio(self) -> Optional[np.ndarray]:
        if self._audio is UNREAD:
            if self.path is None:
                raise ValueError(f"{self.video_id}: no video file to read audio from")
            self._audio = read_audio(self.path, sample_rate=16000)
        return self._audio

    def set_audio(self, samples: Optional[np.ndarray]) -> None:
        self._audio = None if samples is None else np.asarray(samples, dtype=np.float32).reshape(-1)


def fps_of(info: MediaInfo) -> float:
    """The frame rate used to map time to frame index (average over decoded timestamps)."""
    fps = info.avg_fps or info.real_fps
    if not fps or not math.isfinite(fps):
        raise MediaError("unknown frame rate")
    return fps


# --------------------------------------------------------------------------- writing
VFR_CLOCK = 90000  # ticks per second of the presentation times of a VFR file (the mp4 video default)


def write_video(dest: Any, frames: Any, fps: float, *, times: Optional[np.ndarray] = None,
                audio: Optional[np.ndarray] = None, audio_rate: int = 16000, duration: Optional[float] = None,
                n_frames: Optional[int] = None, codec: Any = ("libx264", "mpeg4"), crf: int = 23,
                preset: str = "veryfast", threads: int = 1, bit_rate: int = 4_000_000, rotation: int = 0,
                fmt: str = "mp4", options: Optional[Dict[str, str]] = None, clock: int = VFR_CLOCK) -> None:
    """The one video writer: RGB uint8 frames (+ mono float audio) -> an mp4 (yuv420p, AAC).

    ``dest``: a path (written atomically) or a binary file object. The frame size comes from the
    first frame. Constant frame rate by default; with ``times`` (seconds, increasing) frame i is
    shown at times[i] on a ``clock`` ticks-per-second time base (a variable-frame-rate file;
    90 kHz by default, MPEG-4 part 2 needs a clock under 65,536). ``audio`` is written as
    given, or cut/padded to ``duration`` seconds when that is set, interleaved with the frames.
    ``codec``: an encoder name or the first available of several; libx264 uses ``crf``/``preset``
    and ``threads`` (1 keeps x264 bit-exact across runs and machines), others ``bit_rate``.
    ``rotation`` writes a display matrix (players and bah.core.media turn the frames back).
    ``n_frames``: stop after that many frames and refuse fewer.
    """
    import av

    rate = Fraction(fps).limit_denominator(1001)
    if times is not None:
        times = np.asarray(times, dtype=np.float64)
        if times.ndim != 1 or (np.diff(times) <= 0).any() or (n_frames is not None and times.size != n_frames):
            raise ValueError(f"{dest}: frame times must be increasing, one per frame (got shape {times.shape})")
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if duration is not None:
            n_audio = int(round(duration * audio_rate))
            audio = np.pad(audio[:n_audio], (0, max(0, n_audio - audio.size)))
    names = (codec,) if isinstance(codec, str) else tuple(codec)
    usable = [n for n in names if n in av.codecs_available]
    if not usable:
        raise ValueError(f"no video encoder among {list(names)} in this FFmpeg build")

    def encode(target) -> None:
        it = iter(frames)
        first = next(it, None)
        if first is None:
            raise ValueError(f"{dest}: no frames to write")
        height, width = first.shape[:2]
        with av.open(target, mode="w", format=fmt, options=options or {}) as container:
            vs = container.add_stream(usable[0], rate=rate)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            if usable[0] == "libx264":
                vs.options = {"preset": preset, "crf": str(crf), "threads": str(threads)}
                vs.thread_count = threads
            else:
                vs.bit_rate = bit_rate
            if times is not None:
                vs.codec_context.time_base = Fraction(1, clock)
            if rotation:
                vs.set_display_rotation(rotation)
            aus = None
            if audio is not None:
                aus = container.add_stream("aac", rate=audio_rate, layout="mono")
                aus.bit_rate = 64000
            a_pos = written = 0
            for i, rgb in enumerate(itertools.chain([first], it)):
                if n_frames is not None and i >= n_frames:
                    break
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                if times is None:
                    frame.pts = i
                else:
                    frame.pts, frame.time_base = int(round(times[i] * clock)), Fraction(1, clock)
                for packet in vs.encode(frame):
                    container.mux(packet)
                written += 1
                if aus is not None:  # interleave: audio up to the start of the next frame
                    last = n_frames is not None and i == n_frames - 1
                    nxt = (i + 1) / float(rate) if times is None or i + 1 >= times.size else times[i + 1]
                    a_end = audio.size if last else min(audio.size, int(round(nxt * audio_rate)))
                    if a_end > a_pos:
                        _encode_audio(container, aus, audio[a_pos:a_end], a_pos, audio_rate)
                        a_pos = a_end
            if n_frames is not None and written != n_frames:
                raise ValueError(f"{dest}: got {written} frames, expected {n_frames}")
            for packet in vs.encode(None):
                container.mux(packet)
            if aus is not None:
                if a_pos < audio.size:
                    _encode_audio(container, aus, audio[a_pos:], a_pos, audio_rate)
                for packet in aus.encode(None):
                    container.mux(packet)

    if hasattr(dest, "write"):
        encode(dest)
        return
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest, suffix="." + fmt) as tmp:
        encode(str(tmp))


def _encode_audio(container, stream, samples: np.ndarray, start: int, audio_rate: int) -> None:
    import av

    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, :]), format="flt", layout="mono")
    frame.sample_rate = audio_rate
    frame.pts = start
    for packet in stream.encode(frame):
        container.mux(packet)
