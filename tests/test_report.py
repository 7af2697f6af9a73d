"""bah report: the Markdown + PNG report of any run folder, from the trainer's files."""
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import yaml

from bah import cli
from bah.report.document import ANY_NAME, ReportError, pick_timeline_videos, score_predictions, write_report


def _video(n, ah, hit=True, seed=0):
    """One video's prediction record: frames in ``ah`` are A/H; ``hit`` = the model finds them."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, np.int64)
    labels[ah] = 1
    p1 = np.where(labels == 1, 0.9 if hit else 0.2, 0.1) + rng.uniform(-0.05, 0.05, n)
    logits = np.stack([np.log(1 - p1), np.log(p1)], axis=1).astype(np.float32)
    return {"labels": labels, "logits": logits, "g_labels": np.full(n, int(labels.max()), np.int64)}


def _predictions(miss=False):
    # positive videos have A/H on 20-30 % of their frames, as in BAH: a vote calls them negative
    return {
        "Videos/1/Visite_1/a.mp4": _video(50, slice(10, 20), seed=1),
        "Videos/1/Visite_1/b.mp4": _video(50, slice(0, 0), seed=2),
        "Videos/2/Visite_1/c.mp4": _video(40, slice(5, 17), hit=not miss, seed=3),
        "Videos/2/Visite_1/d.mp4": _video(40, slice(0, 0), seed=4),
    }


def _run_folder(tmp_path, miss=False, where=""):
    run = tmp_path / "run"
    (run / where).mkdir(parents=True, exist_ok=True)
    with open(run / where / "prediction-test.pkl", "wb") as fh:
        pickle.dump(_predictions(miss), fh)
    (run / "config.yml").write_text(yaml.safe_dump({"model_name": "lfan", "modality": "landmarks+logmel+bert+"
                                                    "EXPR_continuous_label", "best_epoch": 1}), encoding="utf-8")
    pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [0.7, 0.4, 0.3], "val_frame_avgf1": [0.5, 0.8, 0.85],
                  "val_frame_ap": [0.4, 0.7, 0.8]}).to_csv(run / "metrics.csv", index=False)
    return run


def test_report_files_and_numbers(tmp_path):
    run = _run_folder(tmp_path)
    r = write_report(run, n_timelines=3)
    dest = run / "report"
    for name in ("report.md", "metrics.json", "learning-curves.png", "confusion-test.png", "pr-test.png",
                 "confusion-videos-test.png", "timeline-0.png", "timeline-1.png", "timeline-2.png"):
        assert (dest / name).stat().st_size > 0, name
    assert r.frame_avgf1 == pytest.approx(1.0)
    # majority vote: every positive video has < 50 % A/H frames, so it is called negative
    assert r.videos["FRAMES_VOTE"]["avgf1"] == pytest.approx(1 / 3)
    assert r.video_avgf1 == pytest.approx(1.0)
    m = json.loads((dest / "metrics.json").read_text())
    assert m["videos"][ANY_NAME]["avgf1"] == pytest.approx(1.0)
    assert [v["pred_any"] for v in m["per_video"]] == [1, 0, 1, 0]
    md = (dest / "report.md").read_text()
    assert "frame-level AVGF1: **1.0000**" in md and "](timeline-0.png)" in md and "lfan" in md


def test_missed_video_lowers_video_score(tmp_path):
    frame, videos, per_video = score_predictions(_predictions(miss=True), min_fraction=0.1)
    assert [v["pred_any"] for v in per_video] == [1, 0, 0, 0]
    assert videos[ANY_NAME]["f1_pos"] == pytest.approx(2 / 3)
    assert frame["avgf1"] < 1.0
    # a threshold above every share calls every video negative
    _, strict, _ = score_predictions(_predictions(), min_fraction=0.9)
    assert strict[ANY_NAME]["f1_pos"] == 0.0


def test_evaluation_folder_and_timeline_choice(tmp_path):
    run = _run_folder(tmp_path, where="eval-test")  # what `bah evaluate` writes
    r = write_report(run, tmp_path / "rep", n_timelines=2)
    assert r.markdown == tmp_path / "rep" / "report.md" and r.markdown.is_file()
    chosen = pick_timeline_videos(_predictions(), 3)
    assert len(chosen) == 3 and sum(_predictions()[v]["labels"].max() for v in chosen) == 2


def test_bad_run_folders(tmp_path, capsys):
    with pytest.raises(ReportError, match="no prediction-test.pkl"):
        write_report(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "prediction-test.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ReportError, match="prediction-test.pkl"):
        write_report(bad)
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert "run folder not found" in capsys.readouterr().err


def test_command_prints_the_two_figures_last(tmp_path, capsys):
    run = _run_folder(tmp_path)
    assert cli.main(["report", str(run), "--timelines", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("frame-level AVGF1 1.0000") and lines[-1].startswith("video-level AVGF1 1.0000")


def test_headline_is_the_runs_stored_video_decision(tmp_path):
    from bah.metrics import VideoDecision

    run = _run_folder(tmp_path)
    # a stored rule that calls only the video with 30 % A/H frames positive (a: 20 %, c: 30 %)
    (run / "video-decision.json").write_text(json.dumps(VideoDecision("vote", 0.25, fitted_on="val").to_dict()))
    r = write_report(run, n_timelines=1)
    assert r.video_headline == "DECISION"
    assert r.video_avgf1 == pytest.approx(r.videos["DECISION"]["avgf1"])
    assert r.videos["DECISION"]["f1_pos"] == pytest.approx(2 / 3) and r.videos[ANY_NAME]["f1_pos"] == 1.0
    md = (run / "report" / "report.md").read_text()
    assert "the run's video decision, fitted on val: A/H when FRAMES_VOTE score >= 0.2500" in md
    m = json.loads((run / "report" / "metrics.json").read_text())
    assert m["video_headline"] == "DECISION" and m["video_decision"]["threshold"] == 0.25
