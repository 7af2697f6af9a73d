"""PNG figures for run reports: learning curves, confusion matrix, PR and ROC curves, per-video
A/H timelines and per-participant bars.

Every function draws on its own ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot,
no global backend switch, safe in worker processes and tests), writes the PNG atomically
through :func:`bah.core.files.atomic_path` and returns the destination path.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from bah import metrics as M
from bah.core.files import atomic_path
from bah.metrics.inputs import _labels, _to_numpy, _two_columns

__all__ = [
    "CLASS_NAMES",
    "plot_learning_curves",
    "plot_confusion_matrix",
    "plot_pr_curve",
    "plot_roc_curve",
    "plot_threshold_curve",
    "plot_video_timeline",
    "plot_participant_bars",
    "ah_intervals",
]

PathLike = Union[str, os.PathLike]
CLASS_NAMES = ("No A-H", "With A-H")  # class_id.yaml: 0, 1


def _figure(width: float = 6.4, height: float = 4.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, dest: PathLike) -> Path:
    dest = Path(dest)
    if dest.suffix.lower() != ".png":
        raise ValueError(f"{dest}: plots are written as PNG; give a path ending in .png")
    fig.tight_layout()
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return dest


# --------------------------------------------------------------------------- learning curves
def plot_learning_curves(history: Any, dest: PathLike, metrics: Optional[Sequence[str]] = None,
                         title: Optional[str] = None, best_epoch: Optional[int] = None) -> Path:
    """Loss and metrics per epoch, train vs val; a dashed vertical line marks the selected
    epoch (``best_epoch``, default the last value of a ``best_epoch`` column when there is one).

    history: a DataFrame or the path of a CSV (``summary.csv``) with one row per epoch and
    columns ``epoch`` (optional; else the row number + 1), ``train_<name>`` / ``val_<name>``
    (``train_loss``, ``val_loss``, ``val_frame_avgf1``, ...). metrics: the ``<name>`` parts to
    draw after the loss; default the frame-level AVGF1, AP, legacy AP and AUC when present,
    else up to four columns that name a registered metric (timings and counts are skipped).
    """
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    if isinstance(history, (str, os.PathLike)):
        path = Path(history)
        try:
            df = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ValueError(f"{path}: cannot read the metrics CSV ({exc})") from None
        where = str(path)
    else:
        df = pd.DataFrame(history)
        where = "history"
    if df.empty:
        raise ValueError(f"{where}: no epochs to plot")
    x = df["epoch"].to_numpy() if "epoch" in df.columns else np.arange(1, len(df) + 1)
    names = []
    for col in df.columns:
        for split in ("train_", "val_"):
            if col.startswith(split):
                name = col[len(split):]
                if name not in names:
                    names.append(name)
    if not names:
        raise ValueError(f"{where}: no train_* / val_* columns (found {list(df.columns)})")
    if metrics is None:
        metrics = _default_curve_metrics(names)
    else:
        missing = [m for m in metrics if m not in names]
        if missing:
            raise ValueError(f"{where}: no train_/val_ column for {missing}; available: {names}")
    panels = (["loss"] if "loss" in names else []) + list(metrics)
    if best_epoch is None and "best_epoch" in df.columns and df["best_epoch"].notna().any():
        best_epoch = int(df["best_epoch"].dropna().iloc[-1])
    if best_epoch is not None and best_epoch < 0:
        best_epoch = None  # no epoch improved
    fig = _figure(4.2 * len(panels), 3.6)
    for i, name in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for split, style in (("train", "-o"), ("val", "-s")):
            col = f"{split}_{name}"
            if col in df.columns:
                ax.plot(x, df[col].to_numpy(dtype=float), style, ms=3, label=split)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:green", ls="--", lw=1, label=f"best (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, dest)


DEFAULT_CURVE_METRICS = ("frame_avgf1", "frame_ap", "frame_ap_legacy", "frame_auc")


def _default_curve_metrics(names: Sequence[str]) -> list:
    preferred = [n for n in DEFAULT_CURVE_METRICS if n in names]
    if preferred:
        return preferred
    picked = []
    for n in names:
        if n == "loss":
            continue
        try:
            M.metric_spec(n)
        except KeyError:
            continue  # train_seconds, val_windows, ...: not a metric
        picked.append(n)
    return picked[:4]


# --------------------------------------------------------------------------- confusion matrix
def plot_confusion_matrix(counts: Any, dest: PathLike, class_names: Sequence[str] = CLASS_NAMES,
                          title: Optional[str] = None) -> Path:
    """Row-normalised confusion matrix (rows = true class), each cell annotated with the
    fraction and the raw count. counts: 2x2 integer counts, or a :func:`bah.metrics.frame_metrics`
    dict (its ``confusion_counts``)."""
    if isinstance(counts, Mapping):
        if "confusion_counts" not in counts:
            raise ValueError("plot_confusion_matrix: metrics dict has no 'confusion_counts'")
        counts = counts["confusion_counts"]
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] != len(class_names):
        raise ValueError(f"plot_confusion_matrix: expected {len(class_names)}x{len(class_names)} counts, got {c.shape}")
    rows = c.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(c / rows)
    fig = _figure(4.8, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    k = len(class_names)
    ax.set_xticks(range(k), labels=class_names)
    ax.set_yticks(range(k), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(j, i, f"{norm[i, j]:.3f}\n({int(c[i, j])})", ha="center", va="center", color=colour)
    ax.set_title(title or "confusion matrix (rows = true)")
    return _save(fig, dest)


# --------------------------------------------------------------------------- PR / ROC
def _scores(labels: Any, logits: Any = None, probs: Any = None) -> Tuple[np.ndarray, np.ndarray]:
    y = _labels(labels)
    if logits is not None:
        s = M.softmax(_two_columns(logits, "logits", y.shape[0]))[:, 1]
    elif probs is not None:
        p = _to_numpy(probs, "probs")
        s = (_two_columns(p, "probs", y.shape[0])[:, 1] if p.ndim >= 2 and p.shape[-1] == 2
             else p.reshape(-1)).astype(np.float64)
    else:
        raise ValueError("give logits or probs")
    if s.shape[0] != y.shape[0]:
        raise ValueError(f"scores: {s.shape[0]} values but labels has {y.shape[0]}")
    return y, s


def plot_pr_curve(labels: Any, dest: PathLike, logits: Any = None, probs: Any = None,
                  name: str = "model", title: Optional[str] = None, show_legacy: bool = True) -> Path:
    """Precision-recall curve of class 1 (step curve, sklearn convention) with AP in the
    legend, the legacy AP too (``show_legacy``), and the prevalence line (a chance model)."""
    y, s = _scores(labels, logits, probs)
    if y.sum() == 0:
        raise ValueError("plot_pr_curve: no positive frame, the PR curve is undefined")
    precision, recall, _ = M.precision_recall_curve(y, s)
    ap = M.average_precision(y, s)
    label = f"{name} (AP {ap:.3f}"
    if show_legacy:
        label += f", legacy AP {M.legacy_average_precision(y, s, compat_dtype=False):.3f}"
    label += ")"
    fig = _figure(5.2, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.step(recall, precision, where="post", label=label)
    prevalence = float(y.mean())
    ax.axhline(prevalence, ls="--", color="grey", label=f"prevalence {prevalence:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(title or "precision-recall (With A-H)")
    return _save(fig, dest)


def plot_roc_curve(labels: Any, dest: PathLike, logits: Any = None, probs: Any = None,
                   name: str = "model", title: Optional[str] = None) -> Path:
    """ROC curve of class 1 with the AUC in the legend and the chance diagonal."""
    y, s = _scores(labels, logits, probs)
    if y.sum() == 0 or y.sum() == y.shape[0]:
        raise ValueError("plot_roc_curve: both classes are needed for a ROC curve")
    fpr, tpr, _ = M.roc_curve(y, s)
    fig = _figure(5.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, label=f"{name} (AUC {M.roc_auc(y, s):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or "ROC (With A-H)")
    return _save(fig, dest)


def plot_threshold_curve(thresholds: Any, f1: Any, dest: PathLike, chosen: float, smoothed: Any = None,
                         band: Optional[Tuple[float, float]] = None, label: str = "macro F1",
                         title: Optional[str] = None) -> Path:
    """Macro F1 against the decision threshold, the smoothed curve, the plateau ``band`` (shaded)
    and the chosen threshold (vertical line)."""
    t = np.asarray(thresholds, dtype=np.float64)
    fig = _figure(6.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(t, np.asarray(f1, dtype=np.float64), lw=1, alpha=0.6, label=label)
    if smoothed is not None:
        ax.plot(t, np.asarray(smoothed, dtype=np.float64), lw=2, label=f"{label}, smoothed")
    if band is not None:
        ax.axvspan(band[0], band[1], color="tab:green", alpha=0.15, label=f"plateau {band[0]:.2f}-{band[1]:.2f}")
    ax.axvline(chosen, color="tab:red", ls="--", label=f"threshold {chosen:.4g}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("threshold on p(With A-H)")
    ax.set_ylabel("macro F1 (AVGF1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", fontsize="small")
    ax.set_title(title or "macro F1 vs threshold")
    return _save(fig, dest)


# --------------------------------------------------------------------------- timeline
def ah_intervals(frame_labels: Any) -> np.ndarray:
    """Runs of 1s in a frame label vector as (k, 2) [start, end] frame indices, inclusive
    (the ``fr_detailed_ah`` convention)."""
    y = _labels(frame_labels, "frame_labels")
    edges = np.diff(np.r_[0, y, 0])
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return np.stack([starts, ends], axis=1) if starts.size else np.zeros((0, 2), dtype=np.int64)


def plot_video_timeline(dest: PathLike, frame_labels: Any = None, logits: Any = None, probs: Any = None,
                        fps: float = 25.0, threshold: float = 0.5, intervals: Any = None,
                        title: Optional[str] = None) -> Path:
    """One video: class-1 probability over time against the ground truth.

    True A/H intervals are shaded: ``intervals`` as [[start, end], ...] inclusive frame
    indices (``fr_detailed_ah``), or derived from ``frame_labels``. The decision threshold
    is drawn as a horizontal line. x is in seconds (frame / fps).
    """
    if logits is not None:
        lg = _to_numpy(logits, "logits")
        if lg.ndim < 1 or lg.shape[-1] != 2:
            raise ValueError(f"logits: expected shape (N, 2), got {tuple(lg.shape)}")
        p = M.softmax(lg.reshape(-1, 2))[:, 1]
    elif probs is not None:
        pr = _to_numpy(probs, "probs")
        p = (pr.reshape(-1, 2)[:, 1] if pr.ndim >= 2 and pr.shape[-1] == 2 else pr.reshape(-1)).astype(np.float64)
    else:
        raise ValueError("plot_video_timeline: give logits or probs")
    if fps <= 0:
        raise ValueError(f"plot_video_timeline: fps must be > 0, got {fps}")
    n = p.shape[0]
    y = None
    if frame_labels is not None:
        y = _labels(frame_labels, "frame_labels")
        if y.shape[0] != n:
            raise ValueError(f"frame_labels: {y.shape[0]} frames but the scores have {n}")
    if intervals is None:
        iv = ah_intervals(y) if y is not None else np.zeros((0, 2), dtype=np.int64)
    else:
        iv = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
    t = np.arange(n) / float(fps)
    fig = _figure(9.0, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    for k, (a, b) in enumerate(iv):
        ax.axvspan(a / fps, (b + 1) / fps, color="tab:orange", alpha=0.25, lw=0,
                   label="true A/H" if k == 0 else None)
    ax.plot(t, p, color="tab:blue", lw=1.2, label="P(A/H)")
    if y is not None:
        ax.step(t, y, where="post", color="tab:red", lw=0.8, alpha=0.7, label="frame label")
    ax.axhline(threshold, ls="--", color="grey", lw=0.8, label=f"threshold {threshold:g}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlim(0, max(n / fps, 1.0 / fps))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.legend(loc="upper right", fontsize="x-small", ncol=4)
    if title:
        ax.set_title(title, fontsize="small")
    return _save(fig, dest)


# --------------------------------------------------------------------------- participants
def plot_participant_bars(table: Any, dest: PathLike, metric: str = "avgf1",
                          title: Optional[str] = None) -> Path:
    """Bar per participant of one metric (the table of :func:`bah.metrics.participants.participant_breakdown`),
    with the mean and a +-1 std band over participants (NaN bars are left out and counted)."""
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    if metric not in df.columns:
        raise ValueError(f"plot_participant_bars: no column {metric!r}; available: {list(df.columns)}")
    vals = df[metric].to_numpy(dtype=np.float64)
    ok = ~np.isnan(vals)
    if not ok.any():
        raise ValueError(f"plot_participant_bars: {metric!r} is NaN for every participant")
    names = [str(i) for i in df.index]
    mean, std = float(vals[ok].mean()), float(vals[ok].std())
    fig = _figure(max(5.0, 0.28 * len(names) + 2.0), 3.8)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    ax.bar(x[ok], vals[ok], color="tab:blue")
    ax.axhline(mean, color="black", lw=1.0, label=f"mean {mean:.3f} ± {std:.3f} (n={int(ok.sum())})")
    ax.axhspan(mean - std, mean + std, color="grey", alpha=0.2, lw=0)
    ax.set_xticks(x, labels=names, rotation=90, fontsize="x-small")
    ax.set_ylabel(metric)
    skipped = int((~ok).sum())
    ax.set_title(title or f"{metric} per participant" + (f" ({skipped} undefined)" if skipped else ""))
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, dest)
