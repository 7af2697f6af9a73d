"""The trainer end to end on tiny arrays: every model, resume, run folder, evaluation, bad input."""
import csv
import json
import pickle

import numpy as np
import pytest
import torch
import yaml

from bah.train import engine
from bah.train.augmentation import FaceTransform
from bah.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from bah.train.dataset import write_synthetic_arrays
from bah.train.early_stopping import EarlyStopping
from bah.train.normalization import RunningStats, load_or_compute_stats
from bah.train.options import parse_options
from bah.train.run_folder import RunExistsError
from bah.train.cli import main
from bah.train.trainer import train

LENGTHS = {"train": [40, 70, 55, 90, 33, 64], "val": [50, 80, 45], "test": [60, 38, 75]}
DIMS = {"vision": 16, "vggish": 8, "bert": 12}


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    return write_synthetic_arrays(tmp_path_factory.mktemp("arrays"), LENGTHS, DIMS, seed=1)


def _argv(data, runs, exp, *extra, model="can", modality="vision+vggish+bert"):
    return ["--dataset_path", str(data), "--output_root", str(runs), "--exp_id", exp, "--model_name", model,
            "--modality", modality + "+EXPR_continuous_label", "--window_length", "32", "--hop_length", "16",
            "--train_batch_size", "4", "--num_workers", "0", "--num_epochs", "2", "--verbose", "False",
            "--save_plot", "False", "--opt__lr", "0.01", *extra]


def _modality_for(model):
    return "vggish" if model == "unimodal" else "vision+vggish+bert"


def test_normalisation_stats_match_numpy(tmp_path):
    rng = np.random.RandomState(0)
    chunks = [rng.randn(n, 5) * 3 + 1 for n in (7, 20, 1, 13)]
    rs = RunningStats(5)
    for c in chunks:
        rs.update(c)
    allx = np.concatenate(chunks)
    st = rs.result()
    np.testing.assert_allclose(st.mean, allx.mean(0), rtol=1e-6)
    np.testing.assert_allclose(st.std, allx.std(0, ddof=1), rtol=1e-6)
    folders = []
    for i, c in enumerate(chunks):
        (tmp_path / str(i)).mkdir()
        np.save(tmp_path / str(i) / "f.npy", c.astype(np.float32))
        folders.append(tmp_path / str(i))
    s1 = load_or_compute_stats(folders, ["f"], tmp_path, {"a": 1}, progress=False)
    assert len(list(tmp_path.glob("mean_std-*.npz"))) == 1
    np.save(folders[0] / "f.npy", (chunks[0] * 0).astype(np.float32))  # changed file -> new key, fresh stats
    s2 = load_or_compute_stats(folders, ["f"], tmp_path, {"a": 1}, progress=False)
    assert len(list(tmp_path.glob("mean_std-*.npz"))) == 2 and not np.allclose(s1["f"].mean, s2["f"].mean)


def test_augmentation_same_crop_and_flip_within_a_window():
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (1, 1, 56, 56, 3), dtype=torch.uint8)
    faces = base.expand(6, 5, 56, 56, 3).contiguous()  # every frame of every window identical
    out = FaceTransform(48, 40, train=True)(faces, generator=g)
    assert out.shape == (6, 5, 3, 40, 40) and out.min() >= -1 and out.max() <= 1
    for b in range(6):
        assert all(torch.equal(out[b, 0], out[b, t]) for t in range(5))  # one crop/flip per window
    assert len({out[b, 0].sum().item() for b in range(6)}) > 1  # differs between windows
    ev = FaceTransform(48, 40, train=False)
    torch.testing.assert_close(ev(faces[:1]), ev(faces[:1]))
    f48 = torch.randint(0, 256, (1, 2, 48, 48, 3), dtype=torch.uint8)
    np.testing.assert_allclose(ev(f48)[0, 0].permute(1, 2, 0).numpy(),
                               f48[0, 0, 4:44, 4:44].float().numpy() / 127.5 - 1, atol=1e-6)


def test_early_stopping_patience_after_min_epochs():
    es = EarlyStopping(patience=2, min_epochs=5)
    stops = [es.step(e, v) for e, v in enumerate([0.5, 0.6, 0.4, 0.4, 0.4, 0.4, 0.4])]
    assert stops == [False, False, False, False, True, True, True] and es.best_epoch == 1
    es2 = EarlyStopping(patience=1, ties_improve=True)
    es2.step(0, 0.5)
    assert not es2.step(1, 0.5) and es2.best_epoch == 1  # the original's >=: ties go to the later epoch
    es3 = EarlyStopping(patience=3)
    es3.load_state_dict(es.state_dict())
    assert es3.best == 0.6 and es3.bad_epochs == es.bad_epochs


def _all_models():
    import bah.models as m

    return m.MODELS.list()


@pytest.mark.slow
@pytest.mark.parametrize("model", _all_models())
def test_two_epochs_every_model(arrays, tmp_path, model):
    from bah.metrics import frame_metrics

    res = train(parse_options(_argv(arrays, tmp_path, model, model=model, modality=_modality_for(model))))
    h = res["history"]
    assert [r["epoch"] for r in h] == [0, 1]
    # feature 0 carries the label: the second epoch fits the training windows better than the first
    assert h[1]["train_loss"] < h[0]["train_loss"]
    # the reported test scores are those of the stored test predictions of the selected model
    preds = pickle.load(open(res["run"] / "prediction-test.pkl", "rb"))
    m = frame_metrics(np.concatenate([p["labels"] for p in preds.values()]),
                      logits=np.concatenate([p["logits"] for p in preds.values()]))
    assert res["test"]["frame_avgf1"] == m["avgf1"] and res["test"]["frame_acc"] == m["acc"]
    assert res["best_epoch"] == int(np.argmax([r["val_frame_avgf1"] for r in h]))


@pytest.mark.slow
def test_run_folder_contents_and_no_silent_overwrite(arrays, tmp_path):
    argv = _argv(arrays, tmp_path, "r1", "--save_plot", "True", "--opt__lr", "0.05")
    res = train(parse_options(argv), argv)
    d = res["run"]
    for f in ("config.yml", "cmd.sh", "log.txt", "metrics.csv", "perf-val.yml", "perf-test.yml",
              "prediction-val.pkl", "prediction-test.pkl", "checkpoints/last.pth", "checkpoints/best.pth",
              "best-model/model.pt", "best-model/config.yml", "passed.txt", "plots/curves.png"):
        assert (d / f).is_file(), f
    cfg = yaml.safe_load((d / "config.yml").read_text())
    assert cfg["effective_lr"] == 0.05 and cfg["window_length"] == 32 and "best_epoch" in cfg
    perf = yaml.safe_load((d / "perf-test.yml").read_text())
    assert perf["split"] == "test" and {"MACRO_F1", "CL_ACC", "CONFUSION_MATRIX"} <= set(perf["perfs_frames"])
    preds = pickle.load(open(d / "prediction-test.pkl", "rb"))
    assert len(preds) == 3 and all(set(p) == {"labels", "logits", "g_labels"} for p in preds.values())
    assert sum(len(p["labels"]) for p in preds.values()) == sum(LENGTHS["test"])  # padded frames not scored
    assert (d / "metrics.csv").read_text().count("\n") == 3
    # the validation loss is the training loss on the validation frames of each epoch
    rows = list(csv.DictReader(open(d / "metrics.csv")))
    best = int(rows[-1]["best_epoch"])
    val = pickle.load(open(d / "prediction-val.pkl", "rb"))  # written at the best epoch
    ce = torch.nn.functional.cross_entropy(torch.from_numpy(np.concatenate([p["logits"] for p in val.values()])).double(),
                                           torch.from_numpy(np.concatenate([p["labels"] for p in val.values()])))
    assert float(rows[best]["val_loss"]) == pytest.approx(ce.item(), rel=1e-9)
    assert float(rows[best]["val_frame_loss"]) == float(rows[best]["val_loss"])
    ck = load_checkpoint(d / "checkpoints" / "last.pth")
    assert {"model", "optimizer", "lr_scheduler", "scaler", "epoch", "best_metric", "early_stopping", "rng",
            "options"} <= set(ck) and ck["options"]["effective_lr"] == 0.05
    with pytest.raises(RunExistsError, match="complete"):
        train(parse_options(argv))
    assert main(argv) == 2  # the CLI says so instead of retraining


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_metrics(arrays, tmp_path, monkeypatch):
    extra = ("--num_epochs", "3", "--opt__name_lr_scheduler", "STEP", "--opt__step_size", "1", "--opt__gamma", "0.5")
    full = train(parse_options(_argv(arrays, tmp_path, "full", *extra)))
    real = engine.train_one_epoch

    def killed(*a, **kw):
        if a[4] == 2:
            raise KeyboardInterrupt  # killed while training epoch 2
        return real(*a, **kw)

    monkeypatch.setattr(engine, "train_one_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        train(parse_options(_argv(arrays, tmp_path, "cut", *extra)))
    monkeypatch.setattr(engine, "train_one_epoch", real)
    with pytest.raises(RunExistsError, match="--resume"):
        train(parse_options(_argv(arrays, tmp_path, "cut", *extra)))
    resumed = train(parse_options(_argv(arrays, tmp_path, "cut", *extra, "--resume", "True")))
    assert [h["train_loss"] for h in resumed["history"]] == pytest.approx([h["train_loss"] for h in full["history"]],
                                                                          abs=1e-6)
    assert resumed["test"]["frame_avgf1"] == pytest.approx(full["test"]["frame_avgf1"], abs=1e-6)
    assert resumed["test"]["frame_ap"] == pytest.approx(full["test"]["frame_ap"], abs=1e-6, nan_ok=True)
    assert [h["lr"] for h in resumed["history"]] == [0.01, 0.005, 0.0025]


@pytest.mark.parametrize("min_epochs, stops_after", [(2, 2), (5, 5)])
def test_early_stopping_stops_training(arrays, tmp_path, min_epochs, stops_after):
    # lr 1e-9: the model never changes, so only epoch 0 improves (ties do not, outside compat);
    # patience 1 is reached at epoch 1, and the stop waits for --min_num_epochs epochs
    res = train(parse_options(_argv(arrays, tmp_path, f"es{min_epochs}", "--num_epochs", "20", "--early_stopping",
                                    "1", "--min_num_epochs", str(min_epochs), "--opt__lr", "1e-9")))
    assert len(res["history"]) == stops_after and res["best_epoch"] == 0


@pytest.mark.slow
def test_evaluation_mode_on_a_saved_run(arrays, tmp_path):
    res = train(parse_options(_argv(arrays, tmp_path, "ev")))
    run = res["run"]
    for split in ("val", "train"):
        assert main(["--mode", "EVALUATION", "--fd_exp", str(run), "--eval_set", split,
                     "--case_best_model", "FRAMES_VOTE", "--verbose", "False", "--num_workers", "0",
                     "--output_root", str(tmp_path)]) == 0
        perf = yaml.safe_load((run / f"eval-{split}" / f"perf-{split}.yml").read_text())
        assert perf["split"] == split and perf["perfs_case_best_model"] == perf["perfs_videos"]["FRAMES_VOTE"]
        assert perf["video_decision"] == json.loads((run / "video-decision.json").read_text())
    # the best model re-scores the validation videos exactly as training stored them at the best epoch
    trained = pickle.load(open(run / "prediction-val.pkl", "rb"))
    again = pickle.load(open(run / "eval-val" / "prediction-val.pkl", "rb"))
    assert trained.keys() == again.keys()
    for vid in trained:
        np.testing.assert_allclose(again[vid]["logits"], trained[vid]["logits"], rtol=0, atol=1e-6)
    val_perf = yaml.safe_load((run / "perf-val.yml").read_text())
    again_perf = yaml.safe_load((run / "eval-val" / "perf-val.yml").read_text())["perfs_frames"]
    assert again_perf.pop("CONFUSION_MATRIX") == val_perf["perfs_frames"].pop("CONFUSION_MATRIX")
    assert again_perf == pytest.approx(val_perf["perfs_frames"], abs=1e-9)
    # the train split is scored on whole videos, every frame once
    train_preds = pickle.load(open(run / "eval-train" / "prediction-train.pkl", "rb"))
    assert sorted(len(p["labels"]) for p in train_preds.values()) == sorted(LENGTHS["train"])
    test_perf = yaml.safe_load((res["run"] / "perf-test.yml").read_text())
    assert main(["--mode", "EVALUATION", "--fd_exp", str(res["run"] / "best-model"), "--eval_set", "test",
                 "--verbose", "False", "--num_workers", "0", "--output_root", str(tmp_path)]) == 0
    again = yaml.safe_load((res["run"] / "best-model" / "eval-test" / "perf-test.yml").read_text())
    assert again["perfs_frames"]["MACRO_F1"] == pytest.approx(test_perf["perfs_frames"]["MACRO_F1"])
    assert main(["--mode", "EVALUATION", "--fd_exp", str(tmp_path / "nothing"), "--output_root", str(tmp_path)]) == 2


def test_corrupted_checkpoint_is_detected_and_full_disk_keeps_previous(tmp_path, monkeypatch):
    p = tmp_path / "last.pth"
    save_checkpoint(p, {"epoch": 1, "w": torch.ones(3)})
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(p)
    save_checkpoint(p, {"epoch": 1, "w": torch.ones(3)})

    def full_disk(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError):
        save_checkpoint(p, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(p)["epoch"] == 1 and not list(tmp_path.glob(".last.pth*"))
    (tmp_path / "trunc.pth").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match="not loaded"):
        load_checkpoint(tmp_path / "trunc.pth")


def test_empty_split_and_missing_index_fail_clearly(tmp_path):
    d = write_synthetic_arrays(tmp_path / "d", {"train": [40], "val": [], "test": [30]}, {"vggish": 4})
    assert main(_argv(d, tmp_path, "x", modality="vggish")) == 2
    assert main(_argv(tmp_path / "nowhere", tmp_path, "y", modality="vggish")) == 2


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_amp_one_code_path(arrays, tmp_path, dtype):
    res = train(parse_options(_argv(arrays, tmp_path, "amp" + dtype, "--amp", "True", "--amp_dtype", dtype,
                                    "--num_epochs", "1")))
    ck = load_checkpoint(res["run"] / "checkpoints" / "last.pth")
    if dtype == "bfloat16":
        assert ck["scaler"] is None  # bf16 needs no loss scaling
    else:
        # every optimiser step went through the scaler: no overflow, so the scale is still the
        # initial 2**16 and the growth tracker counts the steps of the epoch
        steps = -(-res["history"][0]["train_windows"] // 4)  # batches of 4 windows
        assert ck["scaler"]["scale"] == 2.0 ** 16 and ck["scaler"]["_growth_tracker"] == steps


def test_gradual_release_adds_backbone_groups():
    from bah.train.trainer import release_backbone

    class Fake(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(2, 2)
            self._visual = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(3)])
            for p in self._visual.parameters():
                p.requires_grad_(False)

    m = Fake()
    o = parse_options(["--dataset_path", "/d", "--output_root", "/r", "--opt__milestone", "2,4",
                       "--opt__release_count", "3"])
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    assert release_backbone(m, opt, o, 1, 0) == 0 and len(opt.param_groups) == 1
    assert release_backbone(m, opt, o, 2, 0) == 1 and len(opt.param_groups) == 2
    assert m._visual[2].weight.requires_grad and not m._visual[0].weight.requires_grad  # last layers first
    assert release_backbone(m, opt, o, 9, 1) == 2 and len(opt.param_groups) == 3


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lfan", "jmt"])
def test_compat_run_pads_and_stitches(arrays, tmp_path, model):
    # window 64: some evaluation videos are shorter (padded, padded frames scored), some longer (LFAN windows)
    argv = _argv(arrays, tmp_path, "c" + model, "--compat", "--window_length", "64", "--hop_length", "16",
                 "--modality", "vision+vggish+bert+EXPR_continuous_label", model=model)
    res = train(parse_options(argv))
    preds = pickle.load(open(res["run"] / "prediction-test.pkl", "rb"))
    assert sorted(len(p["labels"]) for p in preds.values()) == sorted(max(n, 64) for n in LENGTHS["test"])
    cfg = yaml.safe_load((res["run"] / "config.yml").read_text())
    assert cfg["effective_lr"] == 1e-3 and cfg["effective_eval_metric"] == "AP_POS"


def test_bah_train_and_evaluate_commands(arrays, tmp_path):
    from bah.cli import main as bah_main

    cfg = tmp_path / "t.yaml"
    cfg.write_text("num_epochs: 1\nwindow_length: 32\nhop_length: 16\n")
    rc = bah_main(["train", "--out", str(arrays), "--config", str(cfg), "--model_name", "can", "--modality",
                   "vggish+EXPR_continuous_label", "--num_workers", "0", "--output_root", str(tmp_path),
                   "--exp_id", "cli", "--save_plot", "False", "--hop_length", "8"])
    assert rc == 0
    run = tmp_path / "BAH_DB" / "fold-0" / "id_cli"
    cfg_saved = yaml.safe_load((run / "config.yml").read_text())
    assert (cfg_saved["num_epochs"], cfg_saved["window_length"], cfg_saved["hop_length"]) == (1, 32, 8)
    assert bah_main(["evaluate", "--fd_exp", str(run), "--eval_set", "val", "--num_workers", "0",
                     "--output_root", str(tmp_path)]) == 0
    assert (run / "eval-val" / "perf-val.yml").is_file()


def _crafted_logits(labels, video_label, epoch):
    """Epoch 0: every frame right (frame AVGF1 1) but the mean logit of an A/H video below every
    other video's (its non-A/H frames are very confident). Epoch 1: half of the A/H frames missed
    (frame AVGF1 < 1) but the A/H videos' mean logits above the others' (video AVGF1 1)."""
    n = len(labels)
    d = np.empty(n)
    if epoch == 0:
        d[:] = -0.1 if video_label == 0 else -5.0
        d[labels == 1] = 0.1
    else:
        d[:] = -1.0 if video_label == 0 else -0.2
        on = np.flatnonzero(labels == 1)
        d[on[: (len(on) + 1) // 2]] = 3.0
    return np.stack([np.zeros(n), d], axis=1).astype(np.float32)


@pytest.mark.parametrize("eval_metric, best", [("AVGF1", 0), ("VIDEO_AVGF1", 1)])
def test_video_level_and_frame_level_selection_pick_different_epochs(tmp_path, monkeypatch, eval_metric, best):
    data = write_synthetic_arrays(tmp_path / "d", {"train": [40, 40], "val": [48] * 6, "test": [40, 44]},
                                  {"vggish": 4}, seed=3)
    real = engine.predict

    def crafted(model, loader, device, **kw):
        preds = real(model, loader, device, **kw)
        if kw.get("desc", "").startswith("val "):
            epoch = int(kw["desc"].split()[1])
            for p in preds.values():
                p["logits"] = _crafted_logits(p["labels"], int(p["g_labels"][0]), epoch)
        return preds

    monkeypatch.setattr(engine, "predict", crafted)
    res = train(parse_options(_argv(data, tmp_path, "sel", "--eval_metric", eval_metric, "--case_best_model",
                                    "FRAMES_AVG_LOGITS", "--early_stopping", "0", model="can", modality="vggish")))
    val = [{k[4:]: v for k, v in h.items() if k.startswith("val_")} for h in res["history"]]
    g = [int(p["g_labels"][0]) for p in pickle.load(open(res["run"] / "prediction-val.pkl", "rb")).values()]
    assert 0 < sum(g) < len(g)  # both classes among the validation videos
    assert val[0]["frame_avgf1"] == 1.0 and val[1]["frame_avgf1"] < 1.0
    assert val[1]["video_decision_avgf1"] == 1.0 and val[0]["video_decision_avgf1"] < 1.0
    assert res["best_epoch"] == best
    # the rule of the selected epoch is the one stored and applied to the test split
    stored = json.loads((res["run"] / "best-model" / "video-decision.json").read_text())
    assert stored["aggregation"] == "mean_logit" and stored["threshold"] == res["video_decision"].threshold
    assert stored["threshold"] == val[best]["video_threshold"]
    perf = yaml.safe_load((res["run"] / "perf-test.yml").read_text())
    assert perf["video_decision"]["threshold"] == stored["threshold"] and "DECISION" in perf["perfs_videos"]
