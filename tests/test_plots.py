"""bah.metrics.plots: every figure is a real, non-empty PNG written atomically, and bad input is refused."""
import os

import numpy as np
import pandas as pd
import pytest

from bah import metrics as M
from bah.metrics import plots as P
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(path):
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000
    # no temporary file left behind by the atomic write
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]
    from matplotlib.image import imread

    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # something was drawn
    return img


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(np.int64)
    lg = np.c_[np.zeros(400), 2.0 * y - 1 + rng.normal(size=400)]
    return y, lg


def test_learning_curves_from_csv_and_dataframe(tmp_path):
    df = pd.DataFrame({
        "epoch": [1, 2, 3, 4],
        "train_loss": [0.9, 0.7, 0.6, 0.55], "val_loss": [1.0, 0.8, 0.75, 0.77],
        "train_frame_avgf1": [0.5, 0.6, 0.65, 0.7], "val_frame_avgf1": [0.45, 0.55, 0.6, 0.58],
        "val_frame_ap_legacy": [0.3, 0.4, 0.45, 0.44], "lr": [1e-3] * 4,
    })
    csv = tmp_path / "summary.csv"
    df.to_csv(csv, index=False)
    out = P.plot_learning_curves(csv, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    wide = _png(out)
    one = _png(P.plot_learning_curves(df, tmp_path / "one.png", metrics=["frame_avgf1"]))
    assert wide.shape[1] > one.shape[1]  # loss + 2 metric panels vs loss + 1
    # the trainer's rows also carry timings and video metrics: the default keeps frame metrics
    assert P._default_curve_metrics(["loss", "seconds", "frame_avgf1", "video_vote_avgf1", "frame_auc"]) == \
        ["frame_avgf1", "frame_auc"]
    assert P._default_curve_metrics(["loss", "seconds", "windows_per_s", "acc", "wf1"]) == ["acc", "wf1"]
    with pytest.raises(ValueError, match="no train_/val_ column for \\['auc'\\]"):
        P.plot_learning_curves(df, tmp_path / "x.png", metrics=["auc"])
    with pytest.raises(ValueError, match="summary.csv: no epochs"):
        (tmp_path / "summary.csv").write_text("epoch,train_loss\n")
        P.plot_learning_curves(tmp_path / "summary.csv", tmp_path / "x.png")


def test_learning_curves_mark_the_best_epoch(tmp_path):
    df = pd.DataFrame({"epoch": [0, 1, 2, 3], "train_loss": [0.9, 0.7, 0.6, 0.55], "val_loss": [1.0, 0.8, 0.75, 0.77],
                       "val_frame_avgf1": [0.45, 0.55, 0.6, 0.58], "best_epoch": [0, 1, 2, 2]})
    plain = _png(P.plot_learning_curves(df.drop(columns="best_epoch"), tmp_path / "plain.png"))
    from_column = _png(P.plot_learning_curves(df, tmp_path / "col.png"))
    explicit = _png(P.plot_learning_curves(df.drop(columns="best_epoch"), tmp_path / "two.png", best_epoch=2))
    other = _png(P.plot_learning_curves(df.drop(columns="best_epoch"), tmp_path / "one.png", best_epoch=1))
    assert np.array_equal(from_column, explicit)  # the column's last value is the selected epoch
    assert not np.array_equal(plain, explicit) and not np.array_equal(explicit, other)


def test_confusion_matrix_from_metrics_and_counts(tmp_path, scored):
    y, lg = scored
    m = M.frame_metrics(y, logits=lg)
    _png(P.plot_confusion_matrix(m, tmp_path / "cm.png"))
    _png(P.plot_confusion_matrix([[10, 0], [0, 0]], tmp_path / "cm0.png"))  # empty true row: no NaN
    with pytest.raises(ValueError, match="2x2"):
        P.plot_confusion_matrix(np.zeros((3, 3)), tmp_path / "bad.png")


def test_pr_and_roc_curves(tmp_path, scored):
    y, lg = scored
    _png(P.plot_pr_curve(y, tmp_path / "pr.png", logits=lg))
    _png(P.plot_roc_curve(y, tmp_path / "roc.png", probs=M.softmax(lg)))
    with pytest.raises(ValueError, match="no positive"):
        P.plot_pr_curve(np.zeros(5, dtype=int), tmp_path / "x.png", probs=np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="both classes"):
        P.plot_roc_curve(np.ones(5, dtype=int), tmp_path / "x.png", probs=np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="PNG"):
        P.plot_roc_curve(y, tmp_path / "roc.jpg", logits=lg)


def test_video_timeline_and_intervals(tmp_path):
    labels = np.zeros(100, dtype=np.int64)
    labels[10:30] = 1
    labels[80:] = 1
    assert P.ah_intervals(labels).tolist() == [[10, 29], [80, 99]]
    assert P.ah_intervals(np.zeros(4, dtype=int)).shape == (0, 2)
    lg = np.c_[np.zeros(100), 3.0 * labels - 1.5]
    _png(P.plot_video_timeline(tmp_path / "tl.png", frame_labels=labels, logits=lg, fps=25,
                               title="Videos/1/Visite_1/q1.mp4"))
    _png(P.plot_video_timeline(tmp_path / "tl2.png", probs=np.linspace(0, 1, 50), intervals=[[5, 9]],
                               threshold=0.3))
    with pytest.raises(ValueError, match="frame_labels: 10 frames but the scores have 100"):
        P.plot_video_timeline(tmp_path / "x.png", frame_labels=labels[:10], logits=lg)


def test_participant_bars(tmp_path, scored):
    y, lg = scored
    pid = np.repeat(np.arange(8), 50)
    table, _ = M.participant_breakdown(pid, y, logits=lg)
    _png(P.plot_participant_bars(table, tmp_path / "bars.png", metric="avgf1"))
    with pytest.raises(ValueError, match="no column 'nope'"):
        P.plot_participant_bars(table, tmp_path / "x.png", metric="nope")
