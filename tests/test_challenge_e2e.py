"""End to end on a synthetic release with planted text and timing cues: `bah fit-video` with the
shipped recipes, then `bah submit` and `bah validate-submission`."""
import json

import numpy as np
import pytest
from challenge_data import make_release

from bah import cli
from bah.apps.challenge.experiment import score
from bah.data import Release

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("rel"))


def _fit(release, out, recipe, *extra):
    data, work = release
    rc = cli.main(["fit-video", "--recipe", recipe, "--data-root", str(data), "--work", str(work), "--out", str(out),
                   "--seeds", "0,1,2", *extra])
    assert rc == 0
    return json.loads((out / "video-run.json").read_text())


def _constants(release, split_rows):
    y = np.array([e.label for e in Release(release[0]).video_split("test")])
    return max(score(y, np.full(len(y), c), 0.5)["avgf1"] for c in (0.0, 1.0))


def test_text_timing_recipe_beats_text_alone_and_the_constant_predictors(release, tmp_path, capsys):
    text = _fit(release, tmp_path / "text", "video-text-tfidf")
    both = _fit(release, tmp_path / "both", "video-text-timing")
    for run in (text, both):
        assert run["protocol"] == "challenge" and run["selection"]["split"] == "oof"
        assert run["seeds"] == [0, 1, 2] and run["calibration"]["mode"] == "plateau"
        assert run["splits"] == {"train": 112, "val": 32, "test": 48}
    assert both["features"] == ["timing"] and both["learner"]["learner"] == "late-fusion"
    assert both["recipe"]["name"] == "video-text-timing" and both["recipe"]["weights"] == []
    assert both["recipe"]["config"].endswith("video-text-timing.yaml")
    assert set(both["metrics"]["selection"]["mean"]) >= {"avgf1", "ap", "auc", "positive_rate"}
    assert len(both["metrics"]["selection"]["per_seed"]) == 3
    assert both["calibration"]["plateau"]["low"] <= both["threshold"] <= both["calibration"]["plateau"]["high"]
    const = _constants(release, None)
    sel_t, sel_b = text["metrics"]["selection"], both["metrics"]["selection"]
    test_t, test_b = text["metrics"]["test"], both["metrics"]["test"]
    print(f"\nconstant {const:.4f}; text oof {sel_t['mean']['avgf1']:.4f}±{sel_t['std']['avgf1']:.4f} "
          f"test {test_t['ensemble']['avgf1']:.4f}; text+timing oof {sel_b['mean']['avgf1']:.4f}"
          f"±{sel_b['std']['avgf1']:.4f} test {test_b['ensemble']['avgf1']:.4f}")
    assert sel_b["mean"]["avgf1"] > sel_t["mean"]["avgf1"] + 0.05
    assert test_b["ensemble"]["avgf1"] > test_t["ensemble"]["avgf1"]
    assert test_t["ensemble"]["avgf1"] > const + 0.1 and test_b["ensemble"]["avgf1"] > const + 0.1
    run_dir = tmp_path / "both"
    for name in ("config.yaml", "predictions-oof.csv", "predictions-test.csv", "failures.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "threshold-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (run_dir / "predictions-test.csv").read_text().splitlines()
    assert rows[0] == "video_id,p1,label" and len(rows) == 49
    vid, p1, label = rows[1].split(",")
    assert vid == Release(release[0]).video_split("test")[0].video_id
    assert int(label) == int(float(p1) >= both["threshold"])
    assert "video-text-timing" in capsys.readouterr().out


def test_gated_multimodal_recipe_runs_and_beats_the_constant_predictors(release, tmp_path):
    run = _fit(release, tmp_path / "gated", "video-multimodal-gated", "--folds", "3",
               "--set", "challenge.learner_kwargs.epochs=15")
    assert run["learner"]["learner"] == "mil" and run["learner"]["anchor"] == "text-embed"
    assert run["features"] == ["text-embed", "timing", "prosody", "face-dynamics"]
    assert run["metrics"]["test"]["ensemble"]["avgf1"] > _constants(release, None) + 0.1


def test_submit_then_validate(release, tmp_path, capsys):
    run_dir = tmp_path / "run"
    _fit(release, run_dir, "video-text-tfidf", "--seeds", "0")
    data, _ = release
    template = data / "split" / "test.txt"
    out = tmp_path / "sub"
    assert cli.main(["submit", "--run", str(run_dir), "--template", str(template), "--trial", "0", "--out", str(out)]) == 0
    trial = out / "trial-0.txt"
    assert cli.main(["validate-submission", str(trial), "--template", str(template), "--run", str(run_dir)]) == 0
    lines = trial.read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    bad = out / "trial-1.txt"
    bad.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert cli.main(["validate-submission", str(bad), "--template", str(template)]) == 1
    assert "trial-1.txt:1: wrong order" in capsys.readouterr().out
    assert cli.main(["submit", "--run", str(run_dir), "--trial", "5", "--out", str(out)]) == 2


def test_config_file_bad_videos_and_an_unlabelled_test_split(tmp_path, capsys):
    from bah.core.layout import video_features_dir, video_key

    data, work = make_release(tmp_path / "rel", participants=20, videos=3, splits=(12, 3, 5))
    test_split = data / "split" / "test.txt"
    rows = [line.split(",", 2) for line in test_split.read_text().splitlines()]
    test_split.write_text("".join(f"{r[0]},,{r[2]}\n" for r in rows))  # the private test: no labels
    broken = Release(data).video_split("train")[0].video_id
    (video_features_dir(work, "timing") / f"{video_key(broken)}.npz").write_bytes(b"not an npz")
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text((cli_configs() / "video-text-timing.yaml").read_text())
    out = tmp_path / "run"
    rc = cli.main(["fit-video", "--config", str(cfg), "--data-root", str(data), "--work", str(work),
                   "--out", str(out), "--seeds", "0", "--folds", "3"])
    assert rc == 1  # the run finished, one video left out
    run = json.loads((out / "video-run.json").read_text())
    assert [f["video_id"] for f in run["failures"]] == [broken]
    assert "unreadable npz" in run["failures"][0]["reason"]
    assert json.loads((out / "failures.json").read_text()) == run["failures"]
    assert run["splits"] == {"train": 35, "val": 9, "test": 15}
    assert run["metrics"]["test"] == {"unlabelled": 15}
    assert "unlabelled (15 videos)" in capsys.readouterr().out
    sub = tmp_path / "sub"
    assert cli.main(["submit", "--run", str(out), "--template", str(test_split), "--trial", "0", "--out", str(sub)]) == 0
    assert len((sub / "trial-0.txt").read_text().splitlines()) == 15
    assert cli.main(["fit-video", "--recipe", "no-such-recipe", "--data-root", str(data), "--out", str(out)]) == 2
    assert "recipes: video-multimodal-gated, video-text-tfidf, video-text-timing" in capsys.readouterr().err


def cli_configs():
    from bah.apps.challenge.cli import RECIPES_DIR

    return RECIPES_DIR
