"""Real synthesized speech (espeak-ng) laid out on a video's timeline.

Fluent, confident phrases fill the neutral parts; inside each A/H interval the speaker
hesitates: fillers ("um", "er"), long pauses, hedged wording, a slower rate and a lower pitch.
Every phrase becomes one Whisper-like chunk whose (start, end) are the true times of its
audio, so the transcript, the audio and the frame labels agree exactly.

The cues are planted for the three channels an A/H recipe reads:
- words: hedges only inside A/H intervals (``lexicon.HEDGES``), never in fluent speech;
- timing: fillers are spoken but, as Whisper does, left out of the transcript chunk (the chunk
  keeps what was said in ``spoken``), so their time is speech without words ("erased" time);
  pauses after a filler or a hedge are 0.5-0.9 s, between fluent phrases 0.1-0.25 s;
- voice: a slower rate and a lower pitch while hesitating.
"""
from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from bah.synth import lexicon
from bah.synth.plan import VideoPlan

ESPEAK_RATE = 22050
# Whisper transcribes in 30 s windows and restarts its clock in each one.
WHISPER_WINDOW = 30.0


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed; the message says what to do."""


@dataclass(frozen=True)
class Chunk:
    text: str  # what a transcript shows (Whisper leaves filled pauses out)
    start: float  # seconds on the video's clock
    end: float
    hesitant: bool
    spoken: str = ""  # what was said, fillers included (empty: the same as text)


@dataclass
class SpeechTrack:
    audio: np.ndarray  # float32 mono in [-1, 1], exactly the video's length
    rate: int
    chunks: List[Chunk]

    @property
    def transcript(self) -> str:
        return " ".join(c.text for c in self.chunks)

    def envelope(self, n_frames: int, fps: float) -> np.ndarray:
        """Per-frame loudness in [0, 1] (drives the talking mouth)."""
        out = np.zeros(n_frames, dtype=np.float32)
        for i in range(n_frames):
            a, b = int(i * self.rate / fps), int((i + 1) * self.rate / fps)
            seg = self.audio[a:b]
            if seg.size:
                out[i] = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))
        peak = float(np.percentile(out, 95)) if out.any() else 1.0
        return np.clip(out / max(peak, 1e-6), 0.0, 1.0)


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechError(
            "espeak-ng is not installed; bah synth needs it for the synthetic speech "
            "(Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)"
        )
    return exe


@functools.lru_cache(maxsize=4096)
def _espeak_cached(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    cmd = [espeak_binary(), "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text]
    try:
        proc = subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        raise SpeechError(f"espeak-ng failed for voice {voice!r}: {exc.stderr.decode(errors='replace').strip()}") from None
    data = proc.stdout
    pos = data.find(b"data")
    if not data.startswith(b"RIFF") or pos < 0:
        raise SpeechError(f"espeak-ng returned no WAV data for voice {voice!r} (text {text!r})")
    pcm = np.frombuffer(data[pos + 8 :], dtype="<i2")
    wav = pcm.astype(np.float32) / 32768.0
    # Trim espeak's leading/trailing silence so chunk times are the speech's own.
    loud = np.flatnonzero(np.abs(wav) > 1e-3)
    if loud.size == 0:
        return np.zeros(0, dtype=np.float32)
    wav = wav[max(0, loud[0] - 40) : loud[-1] + 40]
    wav.setflags(write=False)
    return wav


def speak(text: str, voice: str, rate: int, pitch: int, sample_rate: int) -> np.ndarray:
    wav = _espeak_cached(text, voice, int(rate), int(np.clip(pitch, 0, 99)))
    if sample_rate == ESPEAK_RATE:
        return np.array(wav)
    return resample(np.asarray(wav), ESPEAK_RATE, sample_rate)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling in numpy (scipy's import alone costs seconds on a busy machine)."""
    if x.size == 0 or src == dst:
        return x.astype(np.float32)
    if dst < src:
        # Windowed-sinc low-pass at the new Nyquist frequency, then linear interpolation.
        cutoff = 0.45 * dst / src
        k = np.arange(-48, 49)
        taps = 2 * cutoff * np.sinc(2 * cutoff * k) * np.hamming(k.size)
        x = np.convolve(x, taps / taps.sum(), mode="same")
    n_out = int(round(x.size * dst / src))
    pos = np.arange(n_out) * (src / dst)
    return np.interp(pos, np.arange(x.size), x).astype(np.float32)


def build_speech(plan: VideoPlan, sample_rate: int) -> SpeechTrack:
    """Lay confident phrases in the neutral parts and hesitant ones in the A/H intervals."""
    rng = np.random.default_rng([plan.seed, 1])
    fps, n = plan.fps, plan.n_frames
    total = n / fps
    n_samples = int(round(total * sample_rate))
    audio = np.zeros(n_samples, dtype=np.float32)
    look = plan.look
    chunks: List[Chunk] = []

    def place(wav: np.ndarray, t: float) -> float:
        a = int(round(t * sample_rate))
        b = min(n_samples, a + wav.size)
        audio[a:b] += wav[: b - a] * 0.8
        return b / sample_rate

    # Segments: (start s, end s, hesitant?) covering the whole video.
    segments: List[Tuple[float, float, bool]] = []
    t = 0.0
    for s, e in plan.intervals:
        segments.append((t, s / fps, False))
        segments.append((s / fps, (e + 1) / fps, True))
        t = (e + 1) / fps
    segments.append((t, total, False))

    for seg_start, seg_end, hesitant in segments:
        if hesitant:
            chunks.extend(_hesitant(rng, seg_start, seg_end, look, sample_rate, place))
        else:
            chunks.extend(_fluent(rng, seg_start, seg_end, look, sample_rate, place))
    if not chunks:
        # The split files never have an empty transcript; say something short somewhere.
        wav = speak("Yes.", look.voice, look.rate, look.pitch, sample_rate)
        end = place(wav, 0.05)
        chunks.append(Chunk("Yes.", 0.05, end, False))
    np.clip(audio, -1.0, 1.0, out=audio)
    return SpeechTrack(audio=audio, rate=sample_rate, chunks=chunks)


def _fluent(rng, start: float, end: float, look, sr: int, place) -> List[Chunk]:
    out: List[Chunk] = []
    t = start + float(rng.uniform(0.12, 0.3))
    limit = end - 0.1  # keep the fluent voice out of the next A/H interval
    # Long segments go through the phrase list several times, in a new order each time.
    passes = 1 + int((end - start) // 30.0)
    order = np.concatenate([rng.permutation(len(lexicon.CONFIDENT)) for _ in range(passes)])
    misses = 0
    for idx in order:
        text = lexicon.CONFIDENT[int(idx)]
        if t + _estimate(text, look.rate) * 0.6 > limit:
            continue  # clearly too long: skip without running espeak
        wav = speak(text, look.voice, look.rate, look.pitch, sr)
        if t + wav.size / sr > limit:
            misses += 1
            if misses >= 3:  # bound the espeak calls; the rest of the gap stays silent
                break
            continue
        stop = place(wav, t)
        out.append(Chunk(text, round(t, 3), round(stop, 3), False))
        t = stop + float(rng.uniform(0.1, 0.25))
        if limit - t < 0.6:
            break
    return out


# Seconds of silence after a filler (hedges: 0.05 s less at each end); fluent phrases keep 0.1-0.25 s.
PAUSE = (0.5, 0.9)


def _hesitant(rng, start: float, end: float, look, sr: int, place) -> List[Chunk]:
    """Filler, pause, hedge, pause, ... until the interval is full; one chunk for all of it."""
    rate = max(90, int(look.rate * 0.68))
    pitch = max(0, look.pitch - 24)
    t = start + 0.04
    limit = end - 0.04
    words: List[str] = []
    shown: List[bool] = []  # False for fillers: spoken, not transcribed
    first = None
    stop = t
    # A few random hedges, then the shortest ones so that short intervals still get one.
    hedges = [lexicon.HESITANT[int(i)] for i in rng.permutation(len(lexicon.HESITANT))[:4]]
    hedges += sorted(lexicon.HESITANT, key=len)[:3]
    k = 0

    def say(text: str, wav: np.ndarray, pause: float, filler: bool = False) -> None:
        nonlocal first, stop, t
        s = place(wav, t)
        first = t if first is None else first
        words.append(text if not words or text.startswith("I") else text[0].lower() + text[1:])
        shown.append(not filler)
        stop = s
        t = s + pause

    while t < limit:
        # Short intervals cannot hold a filler and a slow hedge: sometimes skip the filler.
        if limit - t > 1.3 or rng.random() < 0.5:
            filler = lexicon.FILLERS[int(rng.integers(0, len(lexicon.FILLERS)))]
            fw = speak(filler, look.voice, max(80, rate - 20), pitch, sr)
            if t + fw.size / sr <= limit:
                say(filler + ",", fw, float(rng.uniform(PAUSE[0], PAUSE[1])), filler=True)
        placed = False
        while k < len(hedges):
            text = hedges[k]
            k += 1
            if t + _estimate(text, rate) * 0.6 > limit:
                continue
            hw = speak(text, look.voice, rate, pitch, sr)
            if t + hw.size / sr <= limit:
                say(text, hw, float(rng.uniform(PAUSE[0] - 0.05, PAUSE[1] - 0.1)))
                placed = True
                break
        if not placed:
            break
    text = " ".join(words)
    if not lexicon.has_hedge(text):
        # The interval was too short for any hedge at this rate: still say the shortest one,
        # faster and cut at the interval end, so the text cue is always there.
        short = min(lexicon.HESITANT, key=len)
        hw = speak(short, look.voice, look.rate, pitch, sr)
        t = stop + 0.02 if words else t
        room = max(1, int((limit - t) * sr))
        say(short, hw[:room], 0.0)
    spoken = " ".join(words)
    text = " ".join(w for w, keep in zip(words, shown) if keep)
    text = text[:1].upper() + text[1:]
    return [Chunk(text, round(first, 3), round(stop, 3), True, spoken)]


def whisper_chunks(track: SpeechTrack, last_end_none: bool) -> List[dict]:
    """Chunks as the release's Whisper YAML has them: timestamps restart every 30 s window."""
    out = []
    for c in track.chunks:
        w = int(c.start // WHISPER_WINDOW) * WHISPER_WINDOW
        out.append({"language": "english", "text": " " + c.text, "timestamp": (round(c.start - w, 2), round(c.end - w, 2))})
    if out and last_end_none:
        out[-1]["timestamp"] = (out[-1]["timestamp"][0], None)
    return out


def _estimate(text: str, rate: int) -> float:
    """Rough spoken length in seconds (espeak's rate is words per minute)."""
    return len(text.split()) * 60.0 / rate + 0.15
