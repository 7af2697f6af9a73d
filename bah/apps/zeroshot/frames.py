"""Which frames a zero-shot model sees.

Two samplers (``SAMPLERS``):

* ``compat`` -- the original: ``np.linspace(0, frames - 1, 8, dtype=int)`` over the
  *container's* frame count, sequential decoding keeping the frames whose index is in that
  set, each resized to 224 x 224 (aspect ratio lost), exactly 8 required. A container that
  reports 0 frames, or more frames than it holds, makes it fail, as the original's assert did.
* ``fixed`` -- chooses by decoded timestamps (the centre of n equal time slices), so wrong
  or missing metadata changes nothing; the aspect ratio is kept (shorter side -> size) and
  the processor does the crop. A clip shorter than n frames repeats frames to fill n.

Two visual sources (``VISUALS``): the video's full frames, or the packed aligned faces
(``features/compacted_48/<id>/video.npy`` written by ``bah faces``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.core.media import MediaError, iter_frames
from bah.core.registry import Registry

log = logging.getLogger(__name__)

__all__ = ["SAMPLERS", "VISUALS", "SampleError", "VideoFileSource", "FaceArraySource", "FrameSampler",
           "CompatSampler", "FixedSampler", "resize_frame"]

SAMPLERS: Registry = Registry("frame sampler")
VISUALS: Registry = Registry("visual source")


class SampleError(ValueError):
    """The sampler cannot give the frames asked for; the message names the video."""


def resize_frame(frame: np.ndarray, size: Optional[int], keep_aspect: bool) -> np.ndarray:
    if not size:
        return frame
    from PIL import Image

    img = Image.fromarray(frame)
    if keep_aspect:
        w, h = img.size
        scale = size / min(w, h)
        target = (max(1, round(w * scale)), max(1, round(h * scale)))
    else:
        target = (size, size)
    # PIL's default filter, as the original's ``Image.resize((224, 224))``
    return np.asarray(img.resize(target))


@VISUALS.register("frames")
class VideoFileSource:
    """Full frames of one video file, decoded with PyAV through bah.core.media."""

    def __init__(self, path: Path, **_):
        self.path = Path(path)
        self._times: Optional[np.ndarray] = None

    def _check_file(self) -> None:
        if not self.path.is_file():
            raise MediaError(f"{self.path}: file not found")
        if self.path.stat().st_size == 0:
            raise MediaError(f"{self.path}: empty file (0 bytes)")

    def container_frames(self) -> int:
        import av

        self._check_file()
        try:
            with av.open(str(self.path)) as c:
                if not c.streams.video:
                    raise MediaError(f"{self.path}: no video stream")
                return int(c.streams.video[0].frames or 0)
        except MediaError:
            raise
        except FileNotFoundError:
            raise MediaError(f"{self.path}: file not found") from None
        except Exception as exc:
            raise MediaError(f"{self.path}: cannot open as a media file ({type(exc).__name__}: {exc})") from None

    def times(self) -> np.ndarray:
        """Presentation time (s) of every decodable frame (bah.core.media.probe_times, one decode pass)."""
        if self._times is None:
            from bah.core.media import probe_times

            self._check_file()
            _, times = probe_times(self.path)
            # reordered or repeated timestamps must not make a slice pick an earlier frame
            self._times = np.maximum.accumulate(times)
        return self._times

    def read(self, indices: Sequence[int]) -> Dict[int, np.ndarray]:
        wanted = {int(i) for i in indices if i >= 0}
        got: Dict[int, np.ndarray] = {}
        if not wanted:
            return got
        last = max(wanted)
        for i, frame in enumerate(iter_frames(self.path)):
            if i in wanted:
                got[i] = frame
            if i >= last:
                break
        return got


@VISUALS.register("faces")
class FaceArraySource:
    """Aligned faces already packed as ``video.npy`` (N, S, S, 3) uint8.

    Frame times are the manifest's record (``times_path``, ``bah.core.layout.frame_times_path``);
    without one, i/fps with a warning.
    """

    def __init__(self, path: Path, fps: float = 25.0, times_path: Optional[Path] = None, **_):
        self.path = Path(path)
        if not self.path.is_file():
            raise MediaError(f"{self.path}: packed faces not found (run `bah faces` first, or use --visual frames)")
        self.array = np.load(self.path, mmap_mode="r")
        if self.array.ndim != 4 or self.array.shape[-1] != 3 or len(self.array) == 0:
            raise MediaError(f"{self.path}: expected (N, S, S, 3) faces with N > 0, found {self.array.shape}")
        self.fps = fps
        self.times_path = times_path

    def container_frames(self) -> int:
        return int(len(self.array))

    def times(self) -> np.ndarray:
        from bah.core.media import frame_times

        return frame_times(len(self.array), self.fps, self.times_path, where=str(self.path))

    def read(self, indices: Sequence[int]) -> Dict[int, np.ndarray]:
        n = len(self.array)
        return {int(i): np.asarray(self.array[i]) for i in set(indices) if 0 <= i < n}


class FrameSampler:
    keep_aspect = True

    def __init__(self, n: int = 8, size: Optional[int] = 224):
        if n < 1:
            raise ValueError(f"number of frames must be >= 1, got {n}")
        self.n, self.size = n, size

    def plan(self, source, span: Optional[Tuple[int, int]] = None) -> List[int]:
        raise NotImplementedError

    def sample(self, source, span: Optional[Tuple[int, int]] = None) -> Tuple[List[np.ndarray], Tuple[int, ...]]:
        """``span`` = [first, end) decoded frame indices (a window); None: the whole video."""
        idx = self.plan(source, span)
        got = source.read(idx)
        frames = [got[i] for i in idx if i in got]
        self.check(source, idx, frames)
        return [resize_frame(f, self.size, self.keep_aspect) for f in frames], tuple(i for i in idx if i in got)

    def check(self, source, idx: List[int], frames: List[np.ndarray]) -> None:
        if len(frames) != len(idx):
            raise SampleError(f"{source.path}: {len(idx) - len(frames)} of {len(idx)} sampled frames could not be decoded")


@SAMPLERS.register("compat")
class CompatSampler(FrameSampler):
    keep_aspect = False

    def plan(self, source, span=None) -> List[int]:
        if span is not None:
            raise SampleError("the compat sampler works on whole videos only; use --sampler fixed for windows")
        total = source.container_frames()
        return np.linspace(0, total - 1, self.n, dtype=int).tolist()

    def sample(self, source, span=None):
        idx = self.plan(source, span)
        keep = set(idx)  # the original keeps frames whose index is in the set: duplicates and -1 collapse
        got = source.read(sorted(keep))
        frames = [got[i] for i in sorted(got)]
        if len(frames) != self.n:
            raise SampleError(
                f"{source.path}: compat sampler kept {len(frames)} of {self.n} frames (the container reports "
                f"{source.container_frames()} frames); the original script stops here (use --sampler fixed)")
        return [resize_frame(f, self.size, False) for f in frames], tuple(sorted(got))


@SAMPLERS.register("fixed")
class FixedSampler(FrameSampler):
    def plan(self, source, span=None) -> List[int]:
        t = source.times()
        a, b = (0, len(t)) if span is None else (max(0, int(span[0])), min(len(t), int(span[1])))
        if b <= a:
            raise SampleError(f"{source.path}: empty frame span [{span[0]}, {span[1]}) of a {len(t)}-frame video")
        seg = t[a:b]
        step = float(np.median(np.diff(seg))) if len(seg) > 1 else 0.0
        t0, t1 = seg[0], seg[-1] + step
        targets = t0 + (np.arange(self.n) + 0.5) * (t1 - t0) / self.n
        # last frame shown at or before each target time
        pos = np.clip(np.searchsorted(seg, targets, side="right") - 1, 0, len(seg) - 1)
        return (a + pos).astype(int).tolist()
