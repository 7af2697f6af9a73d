"""``bah predict VIDEO.mp4 --run RUN_DIR``: a per-frame A/H timeline for a video never seen before.

The run folder says how its model was fed (``preprocessing.yaml`` + ``normalisation.npz``, written
by ``bah.train.run_folder`` when the run was created): the same face stage (``FaceAligner``), the same
extractors with the same settings, the same normalisation statistics, then the model, run on
the whole video (or on overlapping chunks stitched like the trainer's windowed evaluation when
the video is long), so memory stays bounded by the chunk, not by the video. Intermediate arrays
live in a temporary folder as memory maps and are removed afterwards.

Outputs per video, in ``--out-dir``: ``<stem>.frames.csv`` (frame, time_s, p_ah, face_detected),
``<stem>.segments.json`` (A/H segments, the video decision and its probability, notes about
masked modalities) and ``<stem>.timeline.png``.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml
from bah.core.progress import progress_bar

from bah.core.files import save_npy, write_json, write_text
from bah.train.run_folder import NORMALISATION, PREPROCESSING, PREPROCESSING_FORMAT

log = logging.getLogger(__name__)

LABEL_NAMES = {0: "No A-H", 1: "With A-H"}
DEFAULT_CHUNK = 4096  # frames per model pass; longer videos are cut into overlapping chunks


class PredictError(RuntimeError):
    """A video or run folder predict cannot use; the message names it and says why."""


# --------------------------------------------------------------------------- the run folder
@dataclass(frozen=True)
class RunSpec:
    """What a run folder says about its model and the preprocessing it was trained on."""

    path: Path
    options: Any  # bah.train.options.Options, read-only
    preprocessing: Mapping[str, Any]
    stats: Mapping[str, Any]  # modality -> bah.train.normalization.Stats
    weights: Path


def _load_stats(path: Path) -> Dict[str, Any]:
    from bah.train.normalization import Stats

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise PredictError(f"{path}: unreadable normalisation statistics ({exc})") from None
    names = sorted({k.rsplit(".", 1)[0] for k in arrays})
    try:
        return {m: Stats(arrays[f"{m}.mean"].astype(np.float32), arrays[f"{m}.std"].astype(np.float32),
                         int(arrays[f"{m}.count"])) for m in names}
    except KeyError as exc:
        raise PredictError(f"{path}: incomplete statistics, no {exc.args[0]}") from None


def _run_options(cfg: Mapping[str, Any], run: Path):
    """The run's options, read as the trainer's EVALUATION mode reads them."""
    from bah.train.options import OptionsError
    from bah.train.saved_run import options_from_run

    # the weights come from the run: no IR-50 file or previous run is needed to rebuild the model
    try:
        return options_from_run(run, dataset_path=str(cfg.get("dataset_path") or run), load_path=None,
                                use_pretrained_w=False, output_root=str(run.parent), num_workers=0,
                                verbose=False).options
    except OptionsError as exc:
        raise PredictError(f"{run / 'config.yml'}: options this version cannot read ({exc})") from None


def load_run(run_dir: Path) -> RunSpec:
    """Read and check a run folder; refuse one from another version with a clear message."""
    run = Path(run_dir)
    if not run.is_dir():
        raise PredictError(f"--run {run}: no such run folder")
    cfg_file = run / "config.yml"
    if not cfg_file.is_file():
        raise PredictError(f"--run {run}: not a run folder (no config.yml)")
    rec_file = run / PREPROCESSING
    if not rec_file.is_file():
        raise PredictError(
            f"--run {run}: no {PREPROCESSING}; the run was made by a bah version that did not record its "
            f"preprocessing (format {PREPROCESSING_FORMAT} needed), so predict cannot redo it. Retrain it with "
            f"this version.")
    try:
        rec = yaml.safe_load(rec_file.read_text(encoding="utf-8")) or {}
        cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PredictError(f"--run {run}: unreadable {exc}") from None
    version = rec.get("format_version") if isinstance(rec, dict) else None
    if version != PREPROCESSING_FORMAT:
        raise PredictError(
            f"{rec_file}: preprocessing record format {version!r} (bah {rec.get('bah_version', '?') if isinstance(rec, dict) else '?'}); "
            f"this bah reads format {PREPROCESSING_FORMAT}. Use the bah version that trained the run, or retrain it.")
    from bah.stages.features.stage import VERSION as FEATURES_VERSION

    fv = rec.get("features_version")
    if fv is not None and int(fv) != FEATURES_VERSION:
        raise PredictError(f"{rec_file}: features were extracted by feature-stage version {fv}; this bah computes "
                           f"version {FEATURES_VERSION}, whose numbers differ. Retrain the run with this version.")
    norm = rec.get("normalisation") or {}
    stats = _load_stats(run / NORMALISATION) if norm.get("file") else {}
    missing = [m for m in norm.get("modalities", []) if m not in stats]
    if missing:
        raise PredictError(f"{run / NORMALISATION}: no statistics for {missing}")
    weights = next((w for w in (run / "best-model" / "model.pt", run / "checkpoints" / "best.pth") if w.is_file()), None)
    if weights is None:
        raise PredictError(f"--run {run}: no trained weights (best-model/model.pt or checkpoints/best.pth); "
                           f"is the run finished?")
    return RunSpec(run, _run_options(cfg, run), rec, stats, weights)


def build_run_model(spec: RunSpec, device: torch.device) -> torch.nn.Module:
    from bah.train.checkpoint import CheckpointError, load_checkpoint
    from bah.models import load_original_state_dict
    from bah.models.factory import build_model, model_kwargs

    o = spec.options
    dims = [(m, None if m == "video" else int(spec.preprocessing["modality_dims"][m])) for m in o.feature_modalities]
    model = build_model(o.model_name, dims, o.compat, **model_kwargs(o))
    try:
        if spec.weights.suffix == ".pth":
            load_original_state_dict(model, load_checkpoint(spec.weights)["model"])
        else:
            load_original_state_dict(model, spec.weights)
    except (CheckpointError, KeyError, RuntimeError, ValueError) as exc:
        raise PredictError(f"{spec.weights}: cannot load into {o.model_name} ({exc})") from None
    return model.to(device).eval()


# --------------------------------------------------------------------------- results
@dataclass
class Segment:
    start_frame: int
    end_frame: int  # inclusive
    start_s: float
    end_s: float  # end of the last frame
    mean_p: float
    max_p: float


@dataclass
class Prediction:
    video: Path
    n_frames: int
    fps: float
    probs: np.ndarray  # (N,) P(A/H) per frame
    logits: np.ndarray  # (N, 2) the model's frame logits (stitched)
    face_detected: Optional[np.ndarray]  # (N,) bool; None when the run uses no faces (not looked for)
    segments: List[Segment]
    decision: int
    probability: float
    aggregation: str
    threshold: float
    notes: List[str] = field(default_factory=list)
    files: Dict[str, Path] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    times: Optional[np.ndarray] = None  # (N,) each frame's presentation time (s); None: i/fps


def find_segments(probs: np.ndarray, fps: float, threshold: float = 0.5, min_segment: float = 0.0,
                  times: Optional[np.ndarray] = None) -> List[Segment]:
    """Runs of frames with P >= threshold, at least ``min_segment`` seconds long.

    ``times`` (N,) are the frames' presentation times (variable frame rate); without them
    frame i is at i/fps. A run ends where the next frame starts (the last frame lasts 1/fps).
    """
    probs = np.asarray(probs)
    n = len(probs)
    t = np.arange(n) / fps if times is None else np.asarray(times, dtype=np.float64)
    edge_t = np.append(t, (t[-1] if n else 0.0) + 1.0 / fps)  # edge_t[e]: when frame e-1 ends
    above = probs >= threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    out = []
    for s, e in zip(edges[::2], edges[1::2]):  # [s, e) frames
        if edge_t[e] - edge_t[s] + 1e-9 < min_segment:
            continue
        seg = probs[s:e]
        out.append(Segment(int(s), int(e - 1), round(float(edge_t[s]), 4), round(float(edge_t[e]), 4),
                           round(float(seg.mean()), 6), round(float(seg.max()), 6)))
    return out


# --------------------------------------------------------------------------- the predictor
class Predictor:
    """Loads a run once (model, face aligner, extractors) and predicts any number of videos."""

    def __init__(self, run_dir: Path, device: str = "auto", chunk_frames: int = DEFAULT_CHUNK,
                 aggregation: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                 progress: bool = True):
        from bah.metrics.video import VIDEO_AGGREGATIONS

        self.spec = load_run(run_dir)
        o = self.spec.options
        dev = device if device not in (None, "", "auto") else ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(dev)
        if chunk_frames < 2:
            raise PredictError(f"--chunk-frames must be >= 2, got {chunk_frames}")
        self.chunk = int(chunk_frames)
        by_original = {a.original_name: a.name for a in (VIDEO_AGGREGATIONS.get(n) for n in VIDEO_AGGREGATIONS.list())}
        from bah.train.run_folder import load_video_decision

        try:
            self.decision = load_video_decision(self.spec.path)
        except ValueError as exc:
            raise PredictError(str(exc)) from None
        default = self.decision.aggregation if self.decision else by_original.get(str(o.case_best_model).upper(),
                                                                                    "mean_logit")
        self.aggregation = aggregation or default
        VIDEO_AGGREGATIONS.get(self.aggregation)
        if self.decision is not None and self.aggregation != self.decision.aggregation:
            self.decision = None  # the stored threshold belongs to another score: argmax of this aggregation
        self.progress = progress
        self.model = build_run_model(self.spec, self.device)
        self.modalities = list(o.feature_modalities)
        self._faces_cfg, self._feat_cfg = self._stage_settings(overrides or {})
        self._aligner = None
        self._extractors: Dict[str, Any] = {}
        self._recogniser = None  # offline ASR, built for the first video without a transcript
        self._plan = self._extractor_plan()

    # settings -------------------------------------------------------------
    def _stage_settings(self, overrides: Mapping[str, Any]):
        """The recorded stage sections; ``--set faces.K=V`` / ``features.K=V`` change machine-local
        settings (device, batch size, weight paths)."""
        from bah.stages.faces import FaceConfig
        from bah.stages.features.settings import FeatureConfig

        rec = self.spec.preprocessing
        out = []
        for name, cls in (("faces", FaceConfig), ("features", FeatureConfig)):
            sec = dict(rec.get(name) or {})
            known = {f.name for f in dataclasses.fields(cls)}
            for k, v in overrides.items():
                stage, _, key = str(k).partition(".")
                if stage == name:
                    if key not in known:
                        raise PredictError(f"--set {k}: {name} has no setting {key!r} (known: {sorted(known)})")
                    sec[key] = v
            unknown = sorted(set(sec) - known)
            if unknown:
                raise PredictError(f"{self.spec.path / PREPROCESSING}: {name} settings {unknown} unknown to this "
                                   f"bah version; retrain the run with this version")
            if name == "features":
                sec.pop("extractors", None)
            try:
                out.append(cls(**sec) if sec or name == "features" else None)
            except (TypeError, ValueError) as exc:
                raise PredictError(f"{self.spec.path / PREPROCESSING}: bad {name} settings ({exc})") from None
        return out[0], out[1]

    def _extractor_plan(self) -> Dict[str, str]:
        """modality (file stem) -> extractor name; every feature modality must have one."""
        from bah.stages.features import EXTRACTORS

        stems = {}
        for n in EXTRACTORS.list():
            stems.setdefault(EXTRACTORS.get(n).stem, n)
        recorded = {(e.get("stem") or n): n for n, e in (self.spec.preprocessing.get("extractors") or {}).items()}
        plan = {}
        for m in self.modalities:
            if m == "video":
                continue
            name = recorded.get(m) or stems.get(m)
            if name is None or name not in EXTRACTORS.list():
                raise PredictError(f"run {self.spec.path}: modality {m!r} is not produced by any feature extractor "
                                   f"of this bah ({sorted(stems)}); predict cannot compute it from a video")
            plan[m] = name
        needs_faces = "video" in self.modalities or any(
            EXTRACTORS.get(n).modality == "vision" for n in plan.values())
        if needs_faces and self._faces_cfg is None:
            raise PredictError(f"{self.spec.path / PREPROCESSING}: the run uses faces but no face-stage settings were "
                               f"recorded (faces packed from crops?); predict cannot redo that step")
        self._needs_faces = needs_faces
        return plan

    def _extractor(self, name: str):
        from bah.stages.features import EXTRACTORS

        if name not in self._extractors:
            reason = EXTRACTORS.get(name).available()
            if reason:
                raise PredictError(f"extractor {name!r} is needed by the run but not usable here: {reason}")
            try:
                self._extractors[name] = EXTRACTORS.create(name, self._feat_cfg)
            except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
                raise PredictError(f"extractor {name!r}: {exc} (set a local path with --set features.KEY=PATH)") from None
        return self._extractors[name]

    # steps ----------------------------------------------------------------
    def _faces(self, path: Path, n: int, work: Path, notes: List[str]) -> np.ndarray:
        """Align faces into ``work``; returns the per-frame detected flags (zeros faces when none)."""
        from bah.stages.faces import NoFaceError
        from bah.stages.faces.aligner import FaceAligner
        from bah.core.media import MediaError, iter_frames

        if self._aligner is None:
            self._aligner = FaceAligner(self._faces_cfg)
        with progress_bar(total=n, desc=f"faces {path.name}", unit="frame", disable=not self.progress, leave=False) as bar:
            try:
                facts = self._aligner.align_video(iter_frames(path), n, work, on_frame=bar.update)
            except NoFaceError:
                S = self._faces_cfg.size
                np.lib.format.open_memmap(work / "video.npy", mode="w+", dtype=np.uint8, shape=(n, S, S, 3)).flush()
                np.savez(work / "face_record.npz", detected=np.zeros(n, bool), source=np.full(n, -1, np.int32),
                         landmarks68=np.zeros((n, 68, 2), np.float32))
                notes.append(f"no face found in any of the {n} frames: the visual modality is masked (zeros)")
                return np.zeros(n, bool)
            except (MediaError, OSError, ValueError) as exc:
                raise PredictError(f"{path}: face stage failed ({exc})") from None
        if facts.get("decode_error"):
            notes.append(f"decoding stopped early ({facts['decode_error']}); the last face is held")
        with np.load(work / "face_record.npz") as rec:
            detected = rec["detected"].astype(bool)
        if detected.sum() < n:
            notes.append(f"a face was found on {int(detected.sum())} of {n} frames; the others show the nearest face")
        return detected

    def _features(self, video_in, no_face: bool, notes: List[str]) -> Dict[str, np.ndarray]:
        from bah.stages.features import EXTRACTORS

        arrays = {}
        for m, name in progress_bar(self._plan.items(), desc="features", unit="extractor", disable=not self.progress,
                            leave=False):
            ex = self._extractor(name)
            if no_face and EXTRACTORS.get(name).modality == "vision":
                arr = np.zeros((video_in.n_frames, ex.dim()), np.float32)
            else:
                before = len(video_in.warnings)
                try:
                    arr = ex.check(video_in, ex.extract(video_in))
                except PredictError:
                    raise
                except Exception as exc:  # an extractor's own error names the video
                    raise PredictError(f"{video_in.path}: {name} failed ({type(exc).__name__}: {exc})") from None
                notes += video_in.warnings[before:]
            want = self.spec.preprocessing["modality_dims"].get(m)
            if want is not None and arr.shape[1] != int(want):
                raise PredictError(f"{name} gives {arr.shape[1]} dims here but the run was trained on {want} "
                                   f"(different model or weights?)")
            save_npy(Path(video_in.out_dir) / f"{m}.npy", arr)
            arrays[m] = np.load(Path(video_in.out_dir) / f"{m}.npy", mmap_mode="r")
        return arrays

    def _batches(self, arrays: Mapping[str, np.ndarray], bounds: Sequence[Tuple[int, int]]) -> Iterator[Dict]:
        from bah.train.normalization import normalise

        from bah.train.windows import item_rows

        o = self.spec.options
        for k, (s, e) in enumerate(bounds):
            # compat evaluation ran short videos padded to window_length (last row repeated)
            L = max(e - s, int(o.window_length)) if getattr(o, "pad_eval_to_window", False) else e - s
            rows = item_rows(s, e, L) - s
            inputs = {}
            for m in self.modalities:
                x = np.array(arrays[m][s:e])  # a writable copy of the memory-mapped rows
                if len(rows) != len(x):
                    x = x[rows]
                if m != "video":  # as the training items (bah.train.dataset): one float32 array, z-scored
                    x = x.reshape(len(x), -1)
                    x = normalise(x, self.spec.stats[m], o.compat) if m in self.spec.stats else x.astype(np.float32)
                inputs[m] = torch.from_numpy(np.ascontiguousarray(x))[None]
            mask = torch.zeros(1, L, dtype=torch.bool)
            mask[0, : e - s] = True  # padded rows are not frames of the video: never scored
            yield {"inputs": inputs, "mask": mask,
                   "target": torch.zeros(1, L, dtype=torch.long), "video_target": torch.zeros(1, dtype=torch.long),
                   "video_id": [f"chunk-{k}"]}

    def _logits(self, arrays: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        from bah.train import engine
        from bah.train.augmentation import FaceTransform
        from bah.models.factory import fixed_length_of
        from bah.train.windows import stitch, window_bounds

        o = self.spec.options
        bounds = window_bounds(n, self.chunk, max(1, self.chunk // 2))
        preds = engine.predict(self.model, self._batches(arrays, bounds), self.device,
                               transform=FaceTransform(o.face_resize, o.face_crop, train=False, pil_exact=o.compat),
                               amp=bool(o.amp) and self.device.type == "cuda", amp_dtype=o.amp_dtype,
                               fixed_length=fixed_length_of(self.model), hop_length=o.hop_length,
                               progress=self.progress, desc="model")
        wins = [preds[f"chunk-{k}"]["logits"].astype(np.float32) for k in range(len(bounds))]
        return stitch(wins, bounds, n)

    def _uses_text(self) -> bool:
        from bah.stages.features import EXTRACTORS

        return any(EXTRACTORS.get(n).modality == "text" for n in self._plan.values())

    def _recognised(self, video: Path, work: Path, notes: List[str]) -> Tuple[str, Optional[Path]]:
        """Transcript text and a word-timed transcription file made by offline ASR (``bah transcribe``'s)."""
        from bah.stages.speech import AsrError, TranscribeConfig
        from bah.stages.speech.transcribe import transcribe_video

        try:
            if self._recogniser is None:
                self._recogniser = TranscribeConfig().recogniser()
            data = transcribe_video(self._recogniser, video)
        except AsrError as exc:
            notes.append(f"no transcript and no speech recogniser ({exc}); text features are zeros")
            return "", None
        if data.get("note"):
            notes.append(f"no transcript and {data['note']} to recognise; text features are zeros")
            return "", None
        write_json(work / "transcript.json", data)
        text = data["text"].strip()
        heard = text if len(text) <= 300 else text[:297] + "..."
        notes.append(f"no transcript: recognised speech ({self._recogniser.name}, {len(data['chunks'])} words) used: "
                     f"{heard!r}")
        return text, work / "transcript.json"

    # the whole thing ------------------------------------------------------
    def predict(self, video: Path, transcript: Optional[str] = None, out_dir: Optional[Path] = None,
                threshold: float = 0.5, min_segment: float = 0.0) -> Prediction:
        from bah.stages.features.base import VideoInput
        from bah.core.media import MediaError, fps_of, probe_times

        if not 0.0 <= threshold <= 1.0:
            raise PredictError(f"--threshold must be in [0, 1], got {threshold}")
        if min_segment < 0:
            raise PredictError(f"--min-segment must be >= 0 seconds, got {min_segment}")
        video = Path(video)
        if not video.is_file():
            raise PredictError(f"{video}: no such video file")
        t0 = time.perf_counter()
        try:
            info, times = probe_times(video)  # frames at their own times: browser videos are VFR
            fps = fps_of(info)
        except MediaError as exc:
            raise PredictError(f"{video}: unreadable video ({exc})") from None
        n = int(info.n_frames)
        notes: List[str] = []  # the extractors add theirs (no audio track, empty transcript, ...)
        seconds: Dict[str, float] = {"probe": time.perf_counter() - t0}
        with tempfile.TemporaryDirectory(prefix="bah-predict-") as tmp:
            work = Path(tmp)
            t = time.perf_counter()
            detected = self._faces(video, n, work, notes) if self._needs_faces else None
            seconds["faces"] = time.perf_counter() - t
            no_face = detected is not None and not detected.any()
            tr_path = None
            if not transcript and self._uses_text():  # no transcript: recognised speech, not zeros
                transcript, tr_path = self._recognised(video, work, notes)
            vin = VideoInput(video_id=video.name, path=video, n_frames=n, fps=fps, out_dir=work,
                             transcript=transcript or "", transcription_path=tr_path,
                             duration=info.audio_duration or info.duration, times=times)
            if info.vfr:
                notes.append(f"variable frame rate (average {fps:.3f} fps): frames placed at their own times")
            t = time.perf_counter()
            arrays = self._features(vin, no_face, notes)
            if "video" in self.modalities:
                arrays["video"] = np.load(work / "video.npy", mmap_mode="r")
            seconds["features"] = time.perf_counter() - t
            t = time.perf_counter()
            logits = self._logits(arrays, n)
            seconds["model"] = time.perf_counter() - t
            del arrays  # memory maps into the temporary folder
        notes = list(dict.fromkeys(notes))
        return self._finish(video, info, fps, logits, detected, notes, out_dir, threshold, min_segment, seconds,
                            times=times)

    def _finish(self, video, info, fps, logits, detected, notes, out_dir, threshold, min_segment, seconds,
                times=None):
        from bah.metrics import VIDEO_AGGREGATIONS, softmax, video_aggregate

        n = len(logits)
        probs = softmax(logits.astype(np.float64))[:, 1]
        vs = video_aggregate(np.zeros(n, np.int64), logits, np.zeros(1, np.int64), how=self.aggregation)
        prob = float(vs.score[0])
        # the run's stored rule (threshold fitted on validation), as its evaluation decides; a run
        # without one: the aggregation's argmax, the original's rule
        decision = int(self.decision.decide(vs.score)[0]) if self.decision else int(vs.pred[0])
        if times is not None and len(times) != n:
            times = None  # a run whose model changed the length: fall back to i/fps
        segs = find_segments(probs, fps, threshold, min_segment, times=times)
        pred = Prediction(video, n, fps, probs, logits, detected, segs, decision, prob,
                          VIDEO_AGGREGATIONS.get(self.aggregation).original_name, threshold, notes, {}, seconds,
                          times)
        frame_t = np.arange(n) / fps if times is None else times
        out = Path(out_dir) if out_dir else default_out_dir(video, self.spec.path)
        out.mkdir(parents=True, exist_ok=True)
        stem = video.stem
        buf = io.StringIO()
        buf.write("frame,time_s,p_ah,face_detected\n")
        face = [""] * n if detected is None else [str(int(d)) for d in detected]  # empty: not looked for
        for i in range(n):
            buf.write(f"{i},{frame_t[i]:.4f},{probs[i]:.6f},{face[i]}\n")
        pred.files["frames"] = out / f"{stem}.frames.csv"
        write_text(pred.files["frames"], buf.getvalue())
        pred.files["segments"] = out / f"{stem}.segments.json"
        write_json(pred.files["segments"], self.summary(pred, info, min_segment))
        pred.files["timeline"] = out / f"{stem}.timeline.png"
        try:
            from bah.metrics.plots import plot_video_timeline

            plot_video_timeline(pred.files["timeline"], probs=probs, fps=fps, threshold=threshold,
                                title=f"{video.name}: {LABEL_NAMES[decision]} (p={prob:.2f})")
        except (ImportError, ValueError, OSError) as exc:
            log.warning("%s: timeline not drawn (%s)", video, exc)
            pred.files.pop("timeline")
        return pred

    def summary(self, pred: Prediction, info, min_segment: float) -> Dict[str, Any]:
        o = self.spec.options
        return {
            "video": str(pred.video),
            "run": str(self.spec.path),
            "model": o.model_name,
            "modalities": self.modalities,
            "n_frames": pred.n_frames,
            "fps": round(pred.fps, 6),
            "duration_s": round(pred.n_frames / pred.fps, 4),
            "threshold": pred.threshold,
            "min_segment_s": min_segment,
            "video_decision": {"label": LABEL_NAMES[pred.decision], "ah": bool(pred.decision),
                               "probability": round(pred.probability, 6), "aggregation": pred.aggregation,
                               "rule": (f"score >= {self.decision.threshold} (fitted on {self.decision.fitted_on})"
                                        if self.decision else "argmax of the aggregated frames")},
            "segments": [dataclasses.asdict(s) for s in pred.segments],
            "frames_with_face": None if pred.face_detected is None else int(pred.face_detected.sum()),
            "visual_masked": pred.face_detected is not None and not pred.face_detected.any(),
            "has_audio": bool(info.has_audio),
            "notes": pred.notes,
            "seconds": {k: round(v, 3) for k, v in pred.seconds.items()},
        }


def default_out_dir(video: Path, run: Path) -> Path:
    """``<run>/predictions``: never the video's folder, which may be a shared dataset."""
    return Path(run) / "predictions"


def read_transcript(path: Optional[Path]) -> Optional[str]:
    if path is None:
        return None
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PredictError(f"--transcript {p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictError(f"--transcript {p}: unreadable ({exc})") from None


def predict_video(video: Path, run_dir: Path, transcript: "Optional[str | Path]" = None, out_dir: Optional[Path] = None,
                  threshold: float = 0.5, min_segment: float = 0.0, device: str = "auto",
                  progress: bool = True) -> Prediction:
    """One video through a run's preprocessing and model; writes the three outputs into ``out_dir``.

    ``transcript`` is the text itself, or a ``Path`` to a plain-text file (``None`` or empty: the
    speech is recognised offline, noted; text features are zeros when there is no audio either)."""
    if isinstance(transcript, Path):
        transcript = read_transcript(transcript)
    return Predictor(run_dir, device=device, progress=progress).predict(video, transcript, out_dir, threshold,
                                                                        min_segment)


# --------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bah.metrics.video import VIDEO_AGGREGATIONS

    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s) to predict")
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="a finished training run folder")
    parser.add_argument("--transcript", default=None, metavar="FILE",
                        help="plain-text transcript (one video only); without it the speech is recognised "
                             "offline (Whisper tiny.en)")
    parser.add_argument("--out-dir", dest="out_dir", default=None,
                        help="old name of --out: the output folder (default RUN_DIR/predictions)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="P(A/H) threshold of the frame segments (the video decision uses the run's stored rule)")
    parser.add_argument("--min-segment", type=float, default=0.0, metavar="SECONDS", help="drop shorter A/H segments")
    parser.add_argument("--aggregation", default=None, choices=VIDEO_AGGREGATIONS.list(),
                        help="video-level aggregation (default: the run's stored video decision; another one "
                        "decides by its argmax)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda:N")
    parser.add_argument("--chunk-frames", type=int, default=DEFAULT_CHUNK,
                        help="frames per model pass; longer videos run in overlapping stitched chunks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from bah.core.config import parse_set

    if args.transcript and len(args.videos) > 1:
        print("bah predict: error: --transcript applies to one video; predict the videos one by one", file=sys.stderr)
        return 2
    try:
        text = read_transcript(args.transcript)
        predictor = Predictor(Path(args.run), device=args.device, chunk_frames=args.chunk_frames,
                              aggregation=args.aggregation, overrides=parse_set(args.set),
                              progress=not args.no_progress)
    except PredictError as exc:
        print(f"bah predict: error: {exc}", file=sys.stderr)
        return 2
    # --out (the flag every command shares) or its old name; never next to the videos in a dataset
    out_dir = Path(args.out_dir or args.out) if (args.out_dir or getattr(args, "out", None)) else None
    failures = []
    for v in args.videos:
        try:
            p = predictor.predict(Path(v), text, out_dir, args.threshold, args.min_segment)
        except Exception as exc:  # one bad video never stops the others
            if not isinstance(exc, PredictError):
                log.debug("%s", v, exc_info=True)
                exc = f"{v}: {type(exc).__name__}: {exc}"
            failures.append((v, str(exc)))
            print(f"bah predict: error: {exc}", file=sys.stderr)
            continue
        segs = ", ".join(f"{s.start_s:.2f}-{s.end_s:.2f}s" for s in p.segments) or "none"
        print(f"{v}: {LABEL_NAMES[p.decision]} (p={p.probability:.3f}, {p.aggregation}); A/H segments: {segs}")
        for note in p.notes:
            print(f"  note: {note}")
        print(f"  wrote {', '.join(str(f) for f in p.files.values())}")
    if failures:
        print(f"bah predict: {len(failures)} of {len(args.videos)} video(s) failed", file=sys.stderr)
        return 1
    return 0
