"""bah demo / bah run-config: the whole pipeline, its resume, and the paper configurations."""
import json
from pathlib import Path

import pytest
import yaml

from bah import cli
from bah.core.config import ConfigError
from bah.apps.pipeline import (DEMO_CONFIG, MissingWeightsError, deep_merge, load_pipeline_config, plan_steps,
                          resolve_weights, validate)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_paper_configs_name_their_row_and_weights():
    import yaml

    # the challenge recipes (a top-level `challenge:` section) are checked in test_challenge_*
    files = sorted(f for f in CONFIGS.glob("*.yaml") if "challenge" not in yaml.safe_load(f.read_text()))
    names = {f.stem for f in files}
    for level in ("frame", "video"):
        for mod in ("visual", "audio", "text", "va", "vt", "at", "vat"):
            assert f"{level}-{mod}" in names
        for fusion in ("lfan", "can", "mt", "jmt"):
            assert f"{level}-fusion-{fusion}" in names
    for f in files:
        cfg = load_pipeline_config(f)  # validates
        assert "synth" not in cfg, f
        assert "Table" in cfg["reproduces"] or "README" in cfg["reproduces"], f
        mods = cfg["train"]["modality"].split("+")
        wanted = {w["file"] for w in cfg["weights"]}
        if "vggish" in mods:
            assert "vggish.pth" in wanted and "vggish" in cfg["features"]["extractors"], f
        if "bert" in mods:
            assert "bert-base-uncased" in wanted, f
        if "video" in mods:
            assert wanted & {"res50_ir_0.887.pth", "resnet101-bah", "resnet152-bah"}, f
        expected = "video" if cfg["name"].startswith("video-") else "annotation"
        assert cfg["labels"]["source"] == expected, f


def test_run_config_missing_weight_says_where_to_put_it(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rc = cli.main(["run-config", str(CONFIGS / "frame-audio.yaml"), "--data-root", str(data),
                   "--out", str(tmp_path / "out"), "--weights-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "vggish.pth" in err and f"put it at {tmp_path / 'w' / 'vggish.pth'}" in err and "--weights-dir" in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_weights_resolved_into_the_sections(tmp_path):
    cfg = load_pipeline_config(CONFIGS / "frame-fusion-can.yaml")
    (tmp_path / "resnet101-bah").mkdir()
    (tmp_path / "vggish.pth").write_bytes(b"x")
    (tmp_path / "bert-base-uncased").mkdir()
    out = resolve_weights(cfg, tmp_path, "x.yaml")
    assert out["features"]["vggish_weights"] == str(tmp_path / "vggish.pth")
    assert out["features"]["text_model"] == str(tmp_path / "bert-base-uncased")
    assert out["train"]["visual_backbone_path"] == str(tmp_path / "resnet101-bah")
    (tmp_path / "vggish.pth").unlink()
    with pytest.raises(MissingWeightsError, match="vggish.pth"):
        resolve_weights(cfg, tmp_path, "x.yaml")


def test_bad_pipeline_configs(tmp_path):
    with pytest.raises(ConfigError, match="unknown top-level"):
        validate({**DEMO_CONFIG, "trian": {}}, "x")
    with pytest.raises(ConfigError, match="EXPR_continuous_label"):
        validate(deep_merge(DEMO_CONFIG, {"train": {"modality": "landmarks+logmel"}}), "x")
    with pytest.raises(ConfigError, match="pipeline setting"):
        validate(deep_merge(DEMO_CONFIG, {"pipeline": {"paralel": 3}}), "x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_pipeline_config(bad)
    # the demo's steps, in order (the video-level steps do not apply to it: test_pipeline_recipes)
    assert plan_steps(DEMO_CONFIG) == ["synth", "manifest", "faces", "features", "labels", "index", "train", "report"]


def test_demo_refuses_to_generate_into_a_real_dataset(tmp_path, capsys):
    real = tmp_path / "BAH"
    (real / "split").mkdir(parents=True)
    (real / "split" / "train.txt").write_text("x,0,y\n", encoding="utf-8")
    assert cli.main(["demo", "--quick", "--out", str(tmp_path / "o"), "--data-root", str(real)]) == 1
    assert "did not write" in capsys.readouterr().err
    assert (real / "split" / "train.txt").read_text(encoding="utf-8") == "x,0,y\n"


@pytest.mark.slow
def test_quick_demo_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("frame-level AVGF1 (test): ") and lines[-1].startswith("video-level AVGF1 (test, ")

    report = out / "report"
    for name in ("report.md", "metrics.json", "learning-curves.png", "confusion-test.png", "pr-test.png",
                 "timeline-0.png", "timeline-1.png"):
        assert (report / name).stat().st_size > 0, name
    m = json.loads((report / "metrics.json").read_text())
    run = out / "runs" / "BAH_DB" / "fold-0" / "id_demo-quick"
    # the report (bah.report) and the trainer's test pass (bah.train) score the same predictions
    perf = yaml.safe_load((run / "perf-test.yml").read_text())
    assert m["frame"]["avgf1"] == pytest.approx(perf["perfs_frames"]["MACRO_F1"], abs=1e-12)
    # the video headline is the run's stored rule, fitted on validation, and it is what was printed
    assert m["video_headline"] == "DECISION"
    assert m["video_decision"] == json.loads((run / "video-decision.json").read_text()) == perf["video_decision"]
    assert m["video_decision"]["fitted_on"] == "val" and m["video_decision"]["aggregation"] == "vote"
    assert m["videos"]["DECISION"]["avgf1"] == pytest.approx(perf["perfs_videos"]["DECISION"]["MACRO_F1"], abs=1e-12)
    assert float(lines[-1].rsplit(" ", 1)[1]) == pytest.approx(m["videos"]["DECISION"]["avgf1"], abs=1e-4)
    assert m["frame"]["n"] == sum(v["n_frames"] for v in json.loads(
        (out / "work" / "dataset_index.json").read_text())["videos"] if v["split"] == "test")
    assert float(lines[-2].rsplit(" ", 1)[1]) == pytest.approx(m["frame"]["avgf1"], abs=1e-4)
    saved = yaml.safe_load((out / "pipeline.yaml").read_text())
    assert saved["name"] == "demo-quick" and saved["train"]["model_name"] == "LFAN"
    assert (out / "runs" / "BAH_DB" / "fold-0" / "id_demo-quick" / "passed.txt").is_file()

    # a second run skips every finished step and regenerates nothing
    mp4 = next((out / "data" / "Videos").rglob("*.mp4"))
    stamp = mp4.stat().st_mtime_ns
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("already complete") == len(plan_steps(DEMO_CONFIG)) == 8
    assert mp4.stat().st_mtime_ns == stamp

    # an interrupted run: the features step never recorded its end, the run lost its report
    (out / "pipeline" / "steps" / "features.json").unlink()
    (out / "pipeline" / "steps" / "report.json").unlink()
    (report / "report.md").unlink()
    bert = next((out / "work" / "features" / "compacted_48").rglob("bert.npy"))
    best = out / "runs" / "BAH_DB" / "fold-0" / "id_demo-quick" / "checkpoints" / "best.pth"
    stamp, best_stamp = bert.stat().st_mtime_ns, best.stat().st_mtime_ns
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[4/8] features: done" in text and "[1/8] synth: already complete" in text
    assert bert.stat().st_mtime_ns == stamp  # the stage skipped its finished videos
    assert "is complete: reusing it" in text and best.stat().st_mtime_ns == best_stamp  # not retrained
    assert (report / "report.md").is_file()

    # other training settings never silently reuse (or overwrite) the finished run
    assert cli.main(["demo", "--quick", "--out", str(out), "--set", "train.num_epochs=3"]) == 1
    err = capsys.readouterr().err
    assert "trained with other settings (num_epochs: 4 -> 3)" in err and best.stat().st_mtime_ns == best_stamp
