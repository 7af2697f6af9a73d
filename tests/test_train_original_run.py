"""EVALUATION mode on a run folder written by the ORIGINAL trainer (issue 13, item 3).

The test builds what the original leaves on disk (docs: original-training.md §2.1, §2.2, §6.5):
``<run>/config.yml`` and ``<run>/best-model/{model.pt,config.yml}``, the config being the
original's args dict plus ``num_classes``, ``task``, ``folds_dir``, ``outd``, ``t0``, ``tend``,
``best_epoch`` (no ``compat`` key, the original's machine paths in ``dataset_path`` /
``load_path``), and the weights those of the original model fixtures. Those fixtures bypass the
IR-50 (the model gets its 512-d output per frame), which is bah's ``vision`` modality, so the
run's modality names ``vision`` where the original's names ``video``; everything else is the
original's. ``python main.py --mode EVALUATION --fd_exp RUN --dataset_path DATA`` must then run
with no edit and reproduce the original's logits.
"""
import json
import pickle
from pathlib import Path

import numpy as np
import torch
import yaml

from bah.metrics import frame_metrics, to_original_keys
from bah.train.cli import main
from bah.train.dataset import load_index, split_records, write_synthetic_arrays

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LABEL = "EXPR_continuous_label"


def _original_config(model_name, **over):
    cfg = dict(
        mode="TRAINING", dataset_name="BAH_DB", dataset_path="/home/someone/datasets/BAH_DB",
        load_path="/home/someone/bah/pretrained_models", save_path="", visual_backbone_path=None,
        exp_id="2024-05-01_12-00-00_123456", cudaid="0", seed=0, verbose=True, train_p=100.0, valid_p=100.0,
        test_p=100.0, amp=False, opt__name_optimizer="SGD", opt__lr=0.008, opt__momentum=0.9, opt__dampening=0.0,
        opt__nesterov=True, opt__weight_decay=1e-4, opt__beta1=0.9, opt__beta2=0.999, opt__eps_adam=1e-8,
        opt__amsgrad=False, opt__lr_scheduler=True, opt__name_lr_scheduler="MYSTEP", opt__gamma=0.9,
        opt__step_size=50, opt__last_epoch=-1, opt__min_lr=1e-7, opt__t_max=100, opt__mode="MIN", opt__factor=0.5,
        opt__patience=10, opt__gradual_release=1, opt__release_count=3, opt__milestone="0",
        opt__load_best_at_each_epoch=False, resume=False, modality=f"vision+vggish+bert+{LABEL}",
        calc_mean_std=False, emotion="LATER", model_name=model_name, num_folds=1, fold_to_run=0,
        use_pretrained_w=False, pretrained_subpath="", num_heads=2, modal_dim=32, tcn_kernel_size=5,
        num_epochs=60, min_num_epochs=3, early_stopping=50, window_length=696, hop_length=48, train_batch_size=4,
        eval_batch_size=1, num_workers=12, time_delay=0, metrics="nrmse", save_plot=False, use_other_class=False,
        train_supervision_type="video_fr_sup",
        # config-only keys of the original
        num_classes=2, task="CLASSIFICATION", folds_dir="/home/someone/bah/folds/BAH_DB",
        outd="/home/someone/bah/exps/BAH_DB/fold-0/id_2024-05-01_12-00-00_123456", t0="2024-05-01 12:00:00",
        tend="2024-05-01 18:00:00", best_epoch=41)
    cfg.update(over)
    return cfg


def _state_dict(z):
    sd = {k[3:]: torch.from_numpy(z[k]) for k in z.files if k.startswith("sd/")}
    for alias, stored in z["alias_pairs"]:
        sd[str(alias)] = sd[str(stored)]
    return {str(k): sd[str(k)] for k in z["state_dict_keys_in_order"]}


def _dataset(tmp_path, inputs):
    """Two test videos of 96 frames whose features are the fixtures' inputs (samples 0 and 1)."""
    data = write_synthetic_arrays(tmp_path / "data", {"train": [96], "val": [96], "test": [96, 96]},
                                  {"vision": 512, "vggish": 128, "bert": 768}, seed=5)
    recs = split_records(data, "test", None, load_index(data))
    for i, rec in enumerate(recs):
        np.save(rec.folder / "vision.npy", inputs["video_features"][i])
        np.save(rec.folder / "vggish.npy", inputs["vggish"][i, 0])
        np.save(rec.folder / "bert.npy", inputs["bert"][i, 0])
    return data, [r.video_id for r in recs]


def _original_run(tmp_path, cfg, sd):
    run = tmp_path / "exps" / "BAH_DB" / "fold-0" / "id_2024-05-01_12-00-00_123456"
    (run / "best-model").mkdir(parents=True)
    torch.save(sd, run / "best-model" / "model.pt")
    for f in (run / "config.yml", run / "best-model" / "config.yml"):
        f.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return run


def _evaluate_and_compare(tmp_path, run, data, ids, z, reference_keys, exact=True):
    sd_keys = list(torch.load(run / "best-model" / "model.pt", weights_only=True))
    documented = [k for k, _, _ in reference_keys if not k.startswith("spatial.visual.")]
    if exact:
        assert sd_keys == documented
    else:  # other TCN widths: a 1x1 downsample exists exactly where a level changes the width
        assert all(".downsample." in k for k in set(sd_keys) ^ set(documented))
    assert main(["--mode", "EVALUATION", "--fd_exp", str(run), "--dataset_path", str(data), "--eval_set", "test",
                 "--num_workers", "0", "--verbose", "False"]) == 0
    out = run / "eval-test"
    with open(out / "prediction-test.pkl", "rb") as fh:  # written by the evaluation above
        preds = pickle.load(fh)
    for i, vid in enumerate(ids):
        np.testing.assert_allclose(preds[vid]["logits"], z[f"logits_sample{i}_alone"][0], rtol=0, atol=1e-5)
    perf = yaml.safe_load((out / "perf-test.yml").read_text())
    assert perf["original_run"] is True and perf["compat"] is True
    labels = np.concatenate([preds[v]["labels"] for v in ids])
    ref = to_original_keys(frame_metrics(labels, logits=np.concatenate([z[f"logits_sample{i}_alone"][0]
                                                                          for i in range(2)]), compat=True))
    for k, v in ref.items():
        np.testing.assert_allclose(perf["perfs_frames"][k], v, rtol=0, atol=1e-9, err_msg=k)
    return perf


def test_original_lfan_run_evaluates_with_no_edits(tmp_path, reference_dir, caplog):
    z = np.load(FIXTURES / "model_forward_lfan_run.npz", allow_pickle=False)
    inputs = {k[len("input/"):]: z[k] for k in z.files if k.startswith("input/")}
    fx = json.loads(str(z["config_json"]))
    data, ids = _dataset(tmp_path, inputs)
    # LFAN runs in windows of exactly window_length frames (96 in the fixture)
    run = _original_run(tmp_path, _original_config("LFAN", window_length=fx["example_length"]), _state_dict(z))
    keys = json.loads((reference_dir / "state_dict_keys" / "lfan_readme_config.json").read_text())
    with caplog.at_level("INFO", logger="bah.train"):
        _evaluate_and_compare(tmp_path, run, data, ids, z, keys, exact=False)
    taken = [r.getMessage() for r in caplog.records if "from the run:" in r.getMessage()]
    assert "  from the run: model_name = LFAN" in taken and "  from the run: compat = True" in taken
    assert not any("load_path" in t or "dataset_path" in t for t in taken)  # the original's machine paths


def test_command_line_compat_wins_and_contradicting_flags_are_refused(tmp_path, capsys):
    z = np.load(FIXTURES / "model_forward_lfan_run.npz", allow_pickle=False)
    inputs = {k[len("input/"):]: z[k] for k in z.files if k.startswith("input/")}
    data, _ = _dataset(tmp_path, inputs)
    run = _original_run(tmp_path, _original_config("LFAN", window_length=96), _state_dict(z))
    base = ["--mode", "EVALUATION", "--fd_exp", str(run), "--dataset_path", str(data), "--num_workers", "0",
            "--verbose", "False"]
    assert main(base + ["--no-compat"]) == 0
    perf = yaml.safe_load((run / "eval-test" / "perf-test.yml").read_text())
    assert perf["compat"] is False and perf["original_run"] is True
    for flag, value, run_value in (("--model_name", "CAN", "LFAN"), ("--window_length", "64", "96"),
                                   ("--modality", "vggish+EXPR_continuous_label", "vision+vggish+bert")):
        assert main(base + [flag, value]) == 2
        err = capsys.readouterr().err
        assert f"{flag} {value}: contradicts the saved run".lower() in err.lower()
        assert run_value in err and "config.yml" in err
    # the run's own value typed again is no contradiction
    assert main(base + ["--model_name", "lfan"]) == 0


def test_original_jmt_run_evaluates_with_no_edits(tmp_path, reference_dir, large_reference_dir):
    z = np.load(large_reference_dir / "fixtures" / "model_forward_jmt.npz", allow_pickle=False)
    inputs = dict(np.load(large_reference_dir / "fixtures" / "model_forward_inputs.npz", allow_pickle=False))
    data, ids = _dataset(tmp_path, inputs)
    # window 96 = the fixture's length: the original pads shorter evaluation videos to the window
    run = _original_run(tmp_path, _original_config("JMT", window_length=96), _state_dict(z))
    keys = json.loads((reference_dir / "state_dict_keys" / "jmt_readme_config.json").read_text())
    _evaluate_and_compare(tmp_path, run, data, ids, z, keys)
