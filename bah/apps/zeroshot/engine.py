"""The zero-shot run: units of work -> (cached) answers -> labels -> predictions and metrics.

A *unit* is one model call: a whole video (``--level video`` and ``--frame-mode broadcast``)
or one window of it (``--frame-mode window``). Units are prepared one at a time (frames are
decoded lazily) and at most ``2 x concurrency`` are in flight, so memory stays bounded.
A video that cannot be prepared (unreadable file, too few frames, no transcript) or whose
answer fails is recorded in the failure list and the run goes on; a backend that cannot be
reached at all stops the run before anything is written as if it were a result.
"""
from __future__ import annotations

import csv
import io
import logging
import math
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from bah.core.progress import progress_bar

from bah.data import Release, SplitEntry, Transcription
from bah.core.files import write_jsonl, write_text, write_yaml
from bah.core.layout import frame_times_path, video_dir
from bah.core.media import MediaError
from bah.metrics import frame_metrics, to_original_keys
from bah.apps.zeroshot.answer import AnswerParser
from bah.apps.zeroshot.backend import Answer, Backend, BackendError, BackendUnavailable, Item
from bah.apps.zeroshot.cache import ResponseCache, cache_key
from bah.apps.zeroshot.frames import SAMPLERS, VISUALS, FrameSampler, SampleError
from bah.apps.zeroshot.prompt import PromptBook, PromptError, RenderedPrompt
from bah.apps.zeroshot.settings import ZeroShotConfig

log = logging.getLogger(__name__)

__all__ = ["Unit", "Outcome", "RunResult", "window_spans", "slice_transcript", "build_units", "run_zeroshot",
           "constant_references", "summarise", "write_outputs"]

METRIC_KEYS = ("avgf1", "f1_neg", "f1_pos", "wf1", "acc", "ap", "ap_legacy", "auc", "n", "prevalence")


@dataclass
class Unit:
    video_id: str
    key: str
    label: Optional[int]
    span: Optional[Tuple[int, int]]  # [first, end) in label-frame indices; None: the whole video
    video_span: Optional[Tuple[int, int]]  # the same span in decoded-frame indices
    transcript: Optional[str]
    t_range: Optional[Tuple[float, float]] = None


@dataclass
class Outcome:
    unit: Unit
    answer: Optional[Answer] = None
    label: Optional[int] = None
    parsed: bool = False
    cached: bool = False
    error: Optional[str] = None
    prompt_hash: Optional[str] = None
    frame_indices: Tuple[int, ...] = ()


@dataclass
class RunResult:
    outcomes: List[Outcome]
    skipped: List[Dict[str, Any]]  # videos never sent to the model, with the reason
    metrics: Dict[str, Any]
    predictions: List[Dict[str, Any]]
    model_calls: int
    cache_hits: int
    files: Dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- windows, transcripts
def window_spans(n: int, fps: float, window_s: float, hop_s: float) -> List[Tuple[int, int]]:
    """Windows of ``window_s`` every ``hop_s`` over ``n`` frames; the last one ends at the last frame."""
    if n <= 0:
        return []
    w = max(1, int(round(window_s * fps)))
    h = max(1, int(round(hop_s * fps)))
    if n <= w:
        return [(0, n)]
    spans = [(s, s + w) for s in range(0, n - w + 1, h)]
    if spans[-1][1] < n:
        spans.append((n - w, n))
    return spans


def slice_transcript(tr: Transcription, t0: float, t1: float) -> str:
    """The Whisper chunks that overlap [t0, t1), joined (chunk texts carry their own spaces)."""
    parts = [c.text for c in tr.chunks if c.start < t1 and max(c.end, c.start) >= t0]
    return "".join(parts).strip()


# ----------------------------------------------------------------------------- preparing units
def _transcript_for(release: Release, entry: SplitEntry) -> Optional[str]:
    """The split file's transcript (what the original used), else the Whisper file's text."""
    if entry.transcript.strip():
        return entry.transcript
    if release.transcription_path(entry.video_id) is not None:
        text = release.transcription(entry.video_id).text.strip()
        if text:
            return text
    return None


def build_units(release: Release, cfg: ZeroShotConfig, entries: Sequence[SplitEntry], needs_transcript: bool,
                frame_labels: Optional[Dict[str, np.ndarray]] = None,
                sources: Optional[Dict[str, Any]] = None, out: Optional[Path] = None) -> Tuple[List[Unit], List[Dict[str, Any]]]:
    """One unit per video, or per window in window mode. Returns (units, skipped videos with reasons)."""
    units: List[Unit] = []
    skipped: List[Dict[str, Any]] = []
    for e in entries:
        vid = e.video_id
        try:
            transcript = _transcript_for(release, e)
        except (OSError, ValueError) as exc:  # a malformed transcription file: this video only
            transcript = None
            if needs_transcript:
                skipped.append({"video_id": vid, "reason": f"transcription: {exc}"})
                continue
        if needs_transcript and transcript is None:
            skipped.append({"video_id": vid, "reason": "no transcript (empty in the split file, no transcription "
                                                      "file): the prompt needs one"})
            continue
        if cfg.level == "frame":
            if frame_labels is None or vid not in frame_labels:
                skipped.append({"video_id": vid, "reason": f"no frame labels in split-frames/{cfg.split}.txt"})
                continue
            n_lab = len(frame_labels[vid])
        if cfg.level == "video" or cfg.frame_mode == "broadcast":
            span = (0, n_lab) if cfg.level == "frame" else None
            units.append(Unit(vid, vid, e.label, span, None, transcript))
            continue
        # window mode: the video's decoded timeline maps label frames to times
        try:
            src = sources[vid] if sources and vid in sources else VISUALS.create(
                cfg.visual, (video_dir(out, vid) / "video.npy") if cfg.visual == "faces" else release.video_path(vid),
                times_path=frame_times_path(out, vid))
            times = src.times()
        except MediaError as exc:
            skipped.append({"video_id": vid, "reason": str(exc), "failed": True})
            continue
        if sources is not None:
            sources[vid] = src
        n_vid = len(times)
        step = float(np.median(np.diff(times))) if n_vid > 1 else 1.0 / 25
        fps = 1.0 / step if step > 0 else 25.0
        tr: Optional[Transcription] = None
        if needs_transcript:
            if release.transcription_path(vid) is None:
                skipped.append({"video_id": vid, "reason": "window mode needs the Whisper transcription file to cut "
                                                           "the transcript per window; none found"})
                continue
            try:
                tr = release.transcription(vid, duration=float(times[-1] + step))
            except (OSError, ValueError) as exc:
                skipped.append({"video_id": vid, "reason": f"transcription: {exc}"})
                continue
        for a, b in window_spans(n_lab, fps * n_lab / n_vid, cfg.window_s, cfg.hop_s):
            va = min(n_vid - 1, a * n_vid // n_lab)
            vb = max(va + 1, min(n_vid, b * n_vid // n_lab))
            t0, t1 = float(times[va]), float(times[vb - 1] + step)
            text = slice_transcript(tr, t0, t1) if tr is not None else transcript
            units.append(Unit(vid, f"{vid}#{a}-{b}", e.label, (a, b), (va, vb), text, (t0, t1)))
    return units, skipped


# ----------------------------------------------------------------------------- running
@dataclass
class _Job:
    unit: Unit
    item: Item
    key: str


def _execute(backend: Backend, jobs: Iterator[Any], cache: ResponseCache, on_done, concurrency: int) -> Tuple[int, int]:
    """Run jobs (``_Job`` or ready ``Outcome`` for failures) through the cache and the backend."""
    calls = hits = 0

    def settled(job: Any) -> bool:
        """Hand over a ready failure or a cached answer; False when the backend must be called."""
        nonlocal hits
        if isinstance(job, Outcome):
            on_done(job, None, None, False)
            return True
        got = cache.get(job.key)
        if got is None:
            return False
        hits += 1
        on_done(job, got, None, True)
        return True

    def answered(job: _Job, ans: Answer) -> None:
        cache.put(job.key, ans, unit=job.unit.key)
        on_done(job, ans, None, False)

    if concurrency <= 1:
        for job in jobs:
            if settled(job):
                continue
            calls += 1
            try:
                ans = backend.predict(job.item)
            except BackendError as exc:
                on_done(job, None, str(exc), False)
                continue
            answered(job, ans)
        return calls, hits
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="zeroshot") as ex:
        pending: Dict[Future, _Job] = {}

        def drain(block_until: int) -> None:
            while len(pending) > block_until:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    try:
                        ans = fut.result()
                    except BackendError as exc:
                        on_done(job, None, str(exc), False)
                        continue
                    except BackendUnavailable:
                        for other in pending:
                            other.cancel()
                        raise
                    answered(job, ans)

        for job in jobs:
            if settled(job):
                continue
            calls += 1
            pending[ex.submit(backend.predict, job.item)] = job
            drain(2 * concurrency - 1)
        drain(0)
    return calls, hits


def run_zeroshot(cfg: ZeroShotConfig, backend: Backend, release: Release, book: PromptBook, parser: AnswerParser,
                 out: Path, run_dir: Path, cache: ResponseCache, progress: bool = True,
                 entries: Optional[Sequence[SplitEntry]] = None) -> RunResult:
    """Everything but the CLI: returns the result and writes responses, predictions, metrics."""
    if entries is None:
        entries = release.video_split(cfg.split)
    if cfg.limit:
        entries = list(entries)[: cfg.limit]
    prompt_def = book.get(cfg.prompt)
    needs_transcript = prompt_def.uses_transcript
    if not backend.needs_frames and not needs_transcript:
        log.warning("prompt %r has no transcript and backend %s sees no frames: the answer cannot depend on the "
                    "video", cfg.prompt, type(backend).__name__)
    frame_labels = None
    if cfg.level == "frame":
        frame_labels = release.frame_labels(cfg.split)
    if cfg.level == "frame" and cfg.frame_mode == "window" and cfg.sampler == "compat" and backend.needs_frames:
        raise ValueError("window mode samples frames inside each window: use --sampler fixed")
    sources: Dict[str, Any] = {}
    units, skipped = build_units(release, cfg, entries, needs_transcript, frame_labels, sources, out)
    sampler: FrameSampler = SAMPLERS.create(cfg.sampler, n=max(1, cfg.num_frames), size=cfg.frame_size)
    identity, gen = backend.identity(), backend.generation_params()
    # unreadable videos count as failures; videos left out by design (no transcript) as skipped
    failed_videos: Dict[str, str] = {s["video_id"]: s["reason"] for s in skipped if s.get("failed")}
    outcomes: List[Outcome] = []

    def jobs() -> Iterator[Any]:
        for u in units:
            if u.video_id in failed_videos:
                yield Outcome(u, error=f"video failed earlier: {failed_videos[u.video_id]}")
                continue
            try:
                prompt: RenderedPrompt = book.render(cfg.prompt, u.transcript, style=cfg.style,
                                                     video=backend.video_prompts)
                frames, idx = None, ()
                # --num-frames 0: a text-only request, e.g. a text LLM behind an OpenAI-compatible server
                if backend.needs_frames and cfg.num_frames > 0:
                    src = sources.get(u.video_id)
                    if src is None:
                        src = VISUALS.create(cfg.visual, (video_dir(out, u.video_id) / "video.npy")
                                             if cfg.visual == "faces" else release.video_path(u.video_id),
                                             times_path=frame_times_path(out, u.video_id))
                        if cfg.level == "frame" and cfg.frame_mode == "window":
                            sources[u.video_id] = src
                    frames, idx = sampler.sample(src, u.video_span)
            except (MediaError, SampleError, PromptError, OSError, ValueError) as exc:
                failed_videos[u.video_id] = str(exc)
                yield Outcome(u, error=str(exc))
                continue
            item = Item(u.key, frames, u.transcript, prompt, book.candidates, tuple(idx))
            yield _Job(u, item, cache_key(identity, gen, prompt.hash, item.input_hash()))

    bar = progress_bar(total=len(units), desc=f"zeroshot {cfg.backend}", unit="call", disable=not progress)

    def on_done(job: Any, answer: Optional[Answer], error: Optional[str], cached: bool) -> None:
        bar.update(1)
        if isinstance(job, Outcome):
            outcomes.append(job)
            return
        o = Outcome(job.unit, answer=answer, cached=cached, error=error, prompt_hash=job.item.prompt.hash,
                    frame_indices=job.item.frame_indices)
        if answer is not None:
            p = parser(answer.text)
            o.label, o.parsed = p.label, p.parsed
        else:
            failed_videos.setdefault(job.unit.video_id, error or "failed")
        outcomes.append(o)

    try:
        calls, hits = _execute(backend, jobs(), cache, on_done, backend.max_concurrency)
    finally:
        bar.close()
    order = {u.key: i for i, u in enumerate(units)}
    outcomes.sort(key=lambda o: order.get(o.unit.key, 0))
    predictions, metrics = summarise(cfg, outcomes, frame_labels, failed_videos)
    metrics["counts"].update({"videos": len(entries), "skipped": sum(1 for s in skipped if not s.get("failed")), "model_calls": calls,
                              "cache_hits": hits})
    result = RunResult(outcomes, skipped, metrics, predictions, calls, hits)
    write_outputs(run_dir, cfg, result, identity, gen, backend.versions())
    return result


# ----------------------------------------------------------------------------- metrics
def _clean(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return "n/a" if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def _metric_block(y: np.ndarray, pred: np.ndarray, logits: Optional[np.ndarray]) -> Dict[str, Any]:
    m = frame_metrics(y, logits=logits, preds=pred)
    out = {k: _clean(m[k]) for k in METRIC_KEYS}
    out["confusion_counts"] = np.asarray(m["confusion_counts"]).tolist()
    if logits is None:  # no scores: AP does not exist, it is not 0
        out["ap"] = out["ap_legacy"] = out["auc"] = "n/a"
    # the same numbers under the original bah_perfs key names, for tables made with its scripts
    orig = {k: _clean(v) for k, v in to_original_keys(m).items() if k != "CONFUSION_MATRIX"}
    if logits is None:
        orig["Average_precision_POS"] = "n/a"
    out["bah_perfs"] = orig
    return out


def constant_references(y: np.ndarray) -> Dict[str, Dict[str, Any]]:
    """Macro F1 (and F1 of A/H, weighted F1) of the always-0 and always-1 predictors."""
    y = np.asarray(y, dtype=np.int64)
    out = {}
    for c in (0, 1):
        m = frame_metrics(y, preds=np.full_like(y, c))
        out[f"always_{c}"] = {"avgf1": float(m["avgf1"]), "f1_pos": float(m["f1_pos"]), "wf1": float(m["wf1"])}
    return out


def _frame_votes(n: int, outs: List[Outcome]) -> Tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """Per-frame (pred, logits or None, covered) from the windows of one video.

    Overlapping windows average their score pairs; labels are voted, a tie going to the
    window whose centre is nearest the frame.
    """
    votes = np.zeros(n)
    count = np.zeros(n)
    logit_sum = np.zeros((n, 2))
    logit_cnt = np.zeros(n)
    nearest = np.full(n, -1, dtype=np.int64)
    best_d = np.full(n, np.inf)
    frames = np.arange(n)
    all_scores = all(o.answer is not None and o.answer.scores is not None for o in outs)
    for o in outs:
        a, b = o.unit.span
        if o.label is not None:
            votes[a:b] += o.label
            count[a:b] += 1
            d = np.abs(frames[a:b] - (a + b - 1) / 2)
            upd = d < best_d[a:b]
            best_d[a:b][upd] = d[upd]
            nearest[a:b][upd] = o.label
        if all_scores and o.answer is not None:
            logit_sum[a:b] += np.asarray(o.answer.scores)
            logit_cnt[a:b] += 1
    covered = count > 0
    pred = np.where(2 * votes > count, 1, np.where(2 * votes < count, 0, nearest)).astype(np.int64)
    logits = None
    if all_scores and outs:
        logits = logit_sum / np.maximum(logit_cnt, 1)[:, None]
    return pred, logits, covered


def summarise(cfg: ZeroShotConfig, outcomes: List[Outcome], frame_labels, failed_videos: Dict[str, str]):
    answered = [o for o in outcomes if o.answer is not None]
    counts = {"units": len(outcomes), "answered": len(answered), "failed_units": len(outcomes) - len(answered),
              "failed_videos": len(failed_videos), "unparsed": sum(1 for o in answered if not o.parsed),
              "abstained": sum(1 for o in answered if o.label is None)}
    counts["unparsed_rate"] = counts["unparsed"] / len(answered) if answered else "n/a"
    metrics: Dict[str, Any] = {"level": cfg.level, "counts": counts}
    preds: List[Dict[str, Any]] = []
    by_video: Dict[str, List[Outcome]] = {}
    for o in outcomes:
        by_video.setdefault(o.unit.video_id, []).append(o)
    usable = {v: os_ for v, os_ in by_video.items() if v not in failed_videos}
    if cfg.level == "video":
        rows = [os_[0] for os_ in usable.values()]
        for o in rows:
            s = o.answer.scores if o.answer else None
            preds.append({"video_id": o.unit.video_id, "label": o.unit.label, "pred": o.label,
                          "parsed": int(o.parsed), "ll_non": s[0] if s else None, "ll_amb": s[1] if s else None})
        scored = [o for o in rows if o.label is not None and o.unit.label is not None]
        counts["scored"] = len(scored)
        if scored:
            y = np.array([o.unit.label for o in scored], dtype=np.int64)
            pr = np.array([o.label for o in scored], dtype=np.int64)
            lg = None
            if all(o.answer.scores is not None for o in scored):
                lg = np.array([o.answer.scores for o in scored], dtype=np.float64)
            metrics["video"] = _metric_block(y, pr, lg)
            metrics["references"] = constant_references(y)
        else:
            metrics["video"] = "n/a (no labelled video with a prediction)"
        return preds, metrics
    ys, ps, ls, any_missing_scores = [], [], [], False
    n_frames = 0
    for vid, os_ in usable.items():
        lab = np.asarray(frame_labels[vid], dtype=np.int64)
        n = len(lab)
        n_frames += n
        if cfg.frame_mode == "broadcast":
            o = os_[0]
            pred = np.full(n, -1 if o.label is None else o.label, dtype=np.int64)
            covered = np.full(n, o.label is not None)
            lg = np.tile(np.asarray(o.answer.scores, dtype=np.float64), (n, 1)) if o.answer.scores is not None else None
        else:
            pred, lg, covered = _frame_votes(n, os_)
        for i in range(n):
            preds.append({"frame_id": f"{vid}/frame-{i}.jpg", "label": int(lab[i]),
                          "pred": int(pred[i]) if covered[i] else None,
                          "p_amb": float(_p1(lg[i])) if lg is not None else None})
        if lg is None:
            any_missing_scores = True
        ys.append(lab[covered])
        ps.append(pred[covered])
        ls.append(lg[covered] if lg is not None else None)
    counts["frames"] = n_frames
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
    counts["scored"] = int(len(y))
    if len(y):
        lg = None if any_missing_scores else np.concatenate(ls)
        metrics["frame"] = _metric_block(y, np.concatenate(ps), lg)
        metrics["references"] = constant_references(y)
    else:
        metrics["frame"] = "n/a (no labelled frame with a prediction)"
    return preds, metrics


def _p1(pair: np.ndarray) -> float:
    a, b = float(pair[0]), float(pair[1])
    m = max(a, b)
    return math.exp(b - m) / (math.exp(a - m) + math.exp(b - m))


# ----------------------------------------------------------------------------- outputs
def _csv(rows: List[Dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()


def write_outputs(run_dir: Path, cfg: ZeroShotConfig, res: RunResult, identity: Dict[str, Any],
                  gen: Dict[str, Any], versions: Optional[Dict[str, str]] = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for o in res.outcomes:
        rows.append({
            "unit": o.unit.key, "video_id": o.unit.video_id, "span": list(o.unit.span) if o.unit.span else None,
            "t_range": list(o.unit.t_range) if o.unit.t_range else None, "label": o.unit.label,
            "text": o.answer.text if o.answer else None, "pred": o.label, "parsed": o.parsed,
            "scores": list(o.answer.scores) if o.answer and o.answer.scores is not None else None,
            "prompt_hash": o.prompt_hash, "frame_indices": list(o.frame_indices), "cached": o.cached,
            "error": o.error, "meta": o.answer.meta if o.answer else None,
        })
    write_jsonl(run_dir / "responses.jsonl", rows)
    cols = (["video_id", "label", "pred", "parsed", "ll_non", "ll_amb"] if cfg.level == "video"
            else ["frame_id", "label", "pred", "p_amb"])
    write_text(run_dir / "predictions.csv", _csv(res.predictions, cols))
    failures = list(res.skipped) + [{"video_id": o.unit.video_id, "unit": o.unit.key, "reason": o.error}
                                    for o in res.outcomes if o.error]
    write_jsonl(run_dir / "failures.jsonl", failures)
    hashes = sorted({o.prompt_hash for o in res.outcomes if o.prompt_hash})
    meta = {"backend": identity, "generation": gen, "versions": versions or {}, "prompt": cfg.prompt, "style": cfg.style,
            "prompt_hashes": hashes if len(hashes) <= 20 else f"{len(hashes)} distinct (per-unit in responses.jsonl)"}
    write_yaml(run_dir / "metrics.yml", {**res.metrics, "run": meta})
    res.files.update({k: str(run_dir / k) for k in ("responses.jsonl", "predictions.csv", "failures.jsonl",
                                                   "metrics.yml")})

