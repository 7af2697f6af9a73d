"""bah run-config with the video-level recipes (configs/video-*.yaml holding a `challenge:` section):
which steps each runs, early refusals, and the whole text+timing recipe on a tiny synthetic set."""
import json
from pathlib import Path

import pytest
import yaml

from bah import cli
from bah.apps.challenge.report import read_run
from bah.apps.pipeline import STEPS, load_pipeline_config, plan_steps, validate
from bah.core.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = ("video-text-tfidf", "video-text-timing", "video-multimodal-gated")
# A tiny synthetic set: 8 participants x 2 videos of 6 s, small frames (no step here reads faces).
TINY = ["--set", "synth.subjects=8", "--set", "synth.videos_per_subject=2", "--set", "synth.fps=5",
        "--set", "synth.seconds=6", "--set", "synth.width=160", "--set", "synth.height=120"]


def test_steps_in_registration_order():
    assert STEPS.ordered() == ["synth", "manifest", "faces", "transcribe", "video-features", "features", "labels",
                               "index", "train", "fit-video", "report"]


@pytest.mark.parametrize("name, steps", [
    ("video-text-tfidf", ["manifest", "fit-video", "report"]),  # split transcripts: no feature stage
    ("video-text-timing", ["manifest", "transcribe", "video-features", "fit-video", "report"]),
    ("video-multimodal-gated", ["manifest", "faces", "transcribe", "video-features", "fit-video", "report"]),
])
def test_each_recipe_runs_only_the_steps_it_needs(name, steps):
    cfg = load_pipeline_config(CONFIGS / f"{name}.yaml")
    assert plan_steps(cfg) == steps
    assert plan_steps({**cfg, "synth": {}}) == ["synth", *steps]


def test_recipe_text_sources_decide_the_transcribe_step():
    tfidf = load_pipeline_config(CONFIGS / "video-text-tfidf.yaml")
    asr_text = {**tfidf, "challenge": {**tfidf["challenge"], "text_source": "transcripts"}}
    assert plan_steps(asr_text) == ["manifest", "transcribe", "fit-video", "report"]
    # lexical reads the release's transcripts by default; told to use ASR, it needs recognised words
    lexical = {**tfidf, "video_features": {"extractors": ["lexical"]}}
    assert plan_steps(lexical) == ["manifest", "video-features", "fit-video", "report"]
    lexical_asr = {**tfidf, "video_features": {"extractors": ["lexical"], "text_source": "asr"}}
    assert plan_steps(lexical_asr) == ["manifest", "transcribe", "video-features", "fit-video", "report"]
    off = {**load_pipeline_config(CONFIGS / "video-multimodal-gated.yaml"), "pipeline": {"faces": False}}
    assert "faces" not in plan_steps(off)


def test_recipes_stay_fit_video_configs():
    for name in RECIPES:
        from bah.apps.challenge import settings  # noqa: F401  (registers the section)

        cfg = load_config(CONFIGS / f"{name}.yaml", sections=["challenge"], env={})
        assert cfg["challenge"].name == name


def test_a_recipe_with_a_trainer_section_is_refused():
    cfg = load_pipeline_config(CONFIGS / "video-text-timing.yaml")
    with pytest.raises(ConfigError, match=r"no \['train'\] section"):
        validate({**cfg, "train": {"model_name": "LFAN"}}, "x.yaml")
    with pytest.raises(ConfigError, match="'challenge' must be a mapping"):
        validate({**cfg, "challenge": "video-text-timing"}, "x.yaml")


def test_bad_recipe_setting_stops_before_the_first_step(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rc = cli.main(["run-config", str(CONFIGS / "video-text-timing.yaml"), "--data-root", str(data),
                   "--out", str(tmp_path / "out"), "--set", "challenge.calibration=median"])
    assert rc == 2
    assert "calibration" in capsys.readouterr().err
    assert not (tmp_path / "out" / "pipeline" / "steps").exists()


def test_no_dataset_and_not_synthetic_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BAH_DATA_ROOT", raising=False)
    rc = cli.main(["run-config", str(CONFIGS / "video-text-tfidf.yaml"), "--out", str(tmp_path / "out")])
    assert rc == 2 and "--synthetic" in capsys.readouterr().err


@pytest.mark.slow
def test_text_timing_recipe_on_a_synthetic_set_end_to_end(tmp_path, capsys):
    out = tmp_path / "rc"
    argv = ["run-config", str(CONFIGS / "video-text-timing.yaml"), "--synthetic", "--out", str(out), *TINY]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    steps = ["synth", "manifest", "transcribe", "video-features", "fit-video", "report"]
    for k, name in enumerate(steps, 1):
        assert f"[{k}/6] {name}: done" in text, name

    run_dir = out / "runs" / "video-text-timing"
    run = read_run(run_dir)
    assert run["recipe"]["name"] == "video-text-timing" and run["features"] == ["timing"]
    assert run["splits"] == {"train": 10, "val": 2, "test": 4}
    assert run["selection"] == {"split": "oof", "n": 12, "touches_test": False}
    assert run["calibration"]["mode"] == "plateau"
    assert run["calibration"]["plateau"]["low"] <= run["threshold"] <= run["calibration"]["plateau"]["high"]
    # the feature stage computed the recipe's extractor from the recognised words
    assert len(list((out / "work" / "transcripts").glob("*.json"))) == 16
    assert len(list((out / "work" / "video_features" / "timing").glob("*.npz"))) == 16
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["threshold"] == run["threshold"] and metrics["level"] == "video"
    assert (out / "report" / "threshold-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "threshold-curve.png" in (out / "report" / "report.md").read_text()
    assert f"threshold: {run['threshold']:.4f} (plateau)" in text
    saved = yaml.safe_load((out / "pipeline.yaml").read_text())
    assert saved["video_features"]["extractors"] == ["timing"] and saved["synth"]["subjects"] == 8

    # a rerun skips every step and leaves the run as it was
    stamp = (run_dir / "video-run.json").stat().st_mtime_ns
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count("already complete") == 6
    assert (run_dir / "video-run.json").stat().st_mtime_ns == stamp

    # the run's stored threshold makes a submission the strict validator accepts
    sub = tmp_path / "submission"
    assert cli.main(["submit", "--run", str(run_dir), "--trial", "0", "--out", str(sub)]) == 0
    template = out / "data" / "split" / "test.txt"
    assert cli.main(["validate-submission", str(sub / "trial-0.txt"), "--template", str(template),
                     "--run", str(run_dir)]) == 0
    assert "valid (4 videos)" in capsys.readouterr().out
    lines = (sub / "trial-0.txt").read_text().splitlines()
    assert [ln.split(",")[0] for ln in lines] == [ln.split(",")[0] for ln in template.read_text().splitlines()]
