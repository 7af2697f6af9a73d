"""bah.metrics.frame: the original's bah_perfs (fixtures), standard AP / ROC-AUC, video and participant levels."""
import math

import numpy as np
import pytest

from bah import metrics as M
from bah.metrics.probabilities import _class1_prob

CASES = [
    "noisy_informative",
    "constant_score",
    "large_logits",
    "fp16_logits",
    "perfect_confident",
    "perfect_0p8_0p2",
]
SCALARS = {"acc": "CL_ACC", "f1_neg": "F1_NEG", "f1_pos": "F1_POS", "avgf1": "MACRO_F1", "wf1": "W_F1",
           "ap_legacy": "AP_POS"}


def _fixture(reference_dir, case):
    return np.load(reference_dir / "fixtures" / f"metrics_{case}.npz", allow_pickle=False)


# --------------------------------------------------------------------------- compat = the original
@pytest.mark.parametrize("case", CASES)
def test_compat_matches_bah_perfs_fixture(reference_dir, case):
    z = _fixture(reference_dir, case)
    logits = z["logits"]  # stored dtype (float16 in the fp16 case): never upcast before the softmax
    for preds in (z["hard_preds"], None):  # given, or the argmax computed here
        m = M.frame_metrics(z["labels"], logits=logits, preds=preds, compat=True)
        for ours, key in SCALARS.items():
            assert m[ours] == pytest.approx(float(z[key]), abs=1e-12, rel=0), (case, ours)
        assert np.array_equal(m["confusion"], z["CONFUSION_MATRIX"]), case
        assert m["n"] == 5000


@pytest.mark.parametrize("case", CASES)
def test_legacy_softmax_and_pr_curve_match_fixture(reference_dir, case):
    z = _fixture(reference_dir, case)
    probs = M.legacy_softmax(z["logits"])
    assert probs.dtype == z["probs"].dtype
    assert np.array_equal(probs, z["probs"], equal_nan=True)
    th, recall, precision = M.legacy_pr_curve(z["labels"], probs[:, 1])
    assert np.array_equal(th, z["pr_thresholds"])
    np.testing.assert_allclose(recall, z["pr_recall"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(precision, z["pr_precision"], rtol=0, atol=1e-15)


def test_legacy_ap_degenerate_cases_and_no_logits(reference_dir):
    assert M.frame_metrics(_fixture(reference_dir, "perfect_confident")["labels"],
                           logits=_fixture(reference_dir, "perfect_confident")["logits"],
                           compat=True)["ap_legacy"] == 0.0
    z = _fixture(reference_dir, "perfect_0p8_0p2")
    assert M.frame_metrics(z["labels"], logits=z["logits"], compat=True)["ap_legacy"] == pytest.approx(0.5, abs=1e-12)
    out = M.bah_perfs(z["labels"], z["hard_preds"])  # the original called without logits
    assert out["Average_precision_POS"] == float(z["AP_POS_when_logits_None"]) == 0.0
    # standard AP sees the perfect separation the legacy AP hides
    m = M.frame_metrics(z["labels"], logits=z["logits"])
    assert m["ap"] == 1.0 and m["auc"] == 1.0


def test_bah_perfs_dropin_has_original_keys(reference_dir):
    z = _fixture(reference_dir, "noisy_informative")
    out = M.bah_perfs(z["labels"], z["hard_preds"], z["logits"])
    assert set(out) == {"CL_ACC", "F1_NEG", "F1_POS", "MACRO_F1", "W_F1", "Average_precision_POS", "CONFUSION_MATRIX"}
    assert out["Average_precision_POS"] == pytest.approx(float(z["AP_POS"]), abs=1e-12)
    assert np.array_equal(out["CONFUSION_MATRIX"], z["CONFUSION_MATRIX"])


def test_original_key_mapping_round_trips_through_yaml(reference_dir):
    import yaml

    z = _fixture(reference_dir, "noisy_informative")
    m = M.frame_metrics(z["labels"], logits=z["logits"], compat=True)
    text = yaml.safe_dump({"perfs_frames": M.to_original_keys(m)})  # plain types only
    back = M.from_original_keys(yaml.safe_load(text)["perfs_frames"])
    for k in ("acc", "f1_neg", "f1_pos", "avgf1", "wf1", "ap_legacy"):
        assert back[k] == m[k]
    assert np.array_equal(back["confusion"], m["confusion"])
    assert M.from_original_keys({"AP_POS": 0.25})["ap_legacy"] == 0.25


# --------------------------------------------------------------------------- fixed mode
def test_fixed_mode_is_finite_on_large_logits(reference_dir):
    z = _fixture(reference_dir, "large_logits")
    compat = M.frame_metrics(z["labels"], logits=z["logits"], compat=True)
    fixed = M.frame_metrics(z["labels"], logits=z["logits"])
    for k in ("acc", "f1_neg", "f1_pos", "avgf1", "wf1", "ap_legacy", "ap", "auc"):
        assert math.isfinite(fixed[k]), k
    # hard predictions come from the logits, so the classification metrics agree with compat
    for k in ("acc", "avgf1", "wf1"):
        assert fixed[k] == compat[k]
    # the NaN frames of the unshifted softmax become real scores: the legacy AP changes
    assert fixed["ap_legacy"] != pytest.approx(compat["ap_legacy"], abs=1e-3)
    p = M.softmax(z["logits"])
    assert p.dtype == np.float64 and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-15)


def test_softmax_matches_log_space_reference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2)) * 300
    x[0] = [1000.0, -1000.0]
    x[1] = [5.0, 5.0]
    d = x[:, 1] - x[:, 0]
    ref1 = np.exp(-np.logaddexp(0.0, -d))  # sigmoid(d) without overflow
    p = M.softmax(x)
    np.testing.assert_allclose(p[:, 1], ref1, rtol=1e-13, atol=1e-300)
    assert p[1, 1] == 0.5
    # the 2-class fast path used by frame_metrics is bit-identical to softmax
    assert np.array_equal(_class1_prob(x), p[:, 1])
    # general class count too
    x3 = rng.normal(size=(50, 3)) * 50
    e = np.exp(x3 - x3.max(axis=1, keepdims=True))
    np.testing.assert_allclose(M.softmax(x3), e / e.sum(axis=1, keepdims=True), rtol=1e-14)


def test_fixed_mode_refuses_non_finite_logits_compat_keeps_going():
    y = np.array([0, 1, 1, 0])
    lg = np.array([[0, 1], [0, np.nan], [0, 2], [1, 0]], dtype=np.float32)
    with pytest.raises(ValueError, match="non-finite.*index 1"):
        M.frame_metrics(y, logits=lg)
    m = M.frame_metrics(y, logits=lg, compat=True)
    assert math.isnan(m["ap"]) and math.isfinite(m["ap_legacy"])


# --------------------------------------------------------------------------- curves
def _brute_legacy(y, p):
    prec, rec = [], []
    for th in np.arange(0, 1, 0.001):
        pred = p >= th
        tp = np.sum(pred & (y == 1))
        fp = np.sum(pred & (y == 0))
        prec.append(tp / (tp + fp) if tp + fp > 0 else 0.0)
        rec.append(tp / y.sum())
    return np.array(rec), np.array(prec)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sort_based_legacy_pr_equals_threshold_loop(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(2000) < 0.25).astype(np.int64)
    p = np.clip(rng.random(2000) * 0.7 + 0.3 * y, 0, 1)
    p[:50] = np.round(p[:50], 3)  # values exactly on thresholds (>= must include them)
    p[50:60] = np.nan  # never predicted positive
    _, rec, prec = M.legacy_pr_curve(y, p)
    brec, bprec = _brute_legacy(y, p)
    np.testing.assert_array_equal(rec, brec)
    np.testing.assert_array_equal(prec, bprec)
    for dtype in (np.float32, np.float16):  # the original compares in the stored dtype
        q = p.astype(dtype)
        _, rec, prec = M.legacy_pr_curve(y, q)
        brec, bprec = [], []
        for th in np.arange(0, 1, 0.001).tolist():
            pred = q >= th
            tp, fp = np.sum(pred & (y == 1)), np.sum(pred & (y == 0))
            bprec.append(tp / (tp + fp) if tp + fp > 0 else 0.0)
            brec.append(tp / y.sum())
        np.testing.assert_array_equal(rec, brec)
        np.testing.assert_array_equal(prec, bprec)


def test_binary_curve_equals_brute_force():
    rng = np.random.default_rng(3)
    y = (rng.random(600) < 0.3).astype(np.int64)
    s = np.round(rng.random(600), 2)  # many ties
    th, tps, fps = M.binary_curve(y, s)
    assert np.all(np.diff(th) < 0)
    for t, a, b in zip(th, tps, fps):
        assert a == np.sum((s >= t) & (y == 1)) and b == np.sum((s >= t) & (y == 0))
    assert len(th) == len(np.unique(s))


@pytest.mark.parametrize("seed,decimals", [(0, 6), (1, 2), (2, 1), (3, 0)])
def test_ap_and_auc_equal_sklearn(seed, decimals):
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    rng = np.random.default_rng(seed)
    y = (rng.random(3000) < 0.2).astype(np.int64)
    s = np.round(rng.random(3000) + 0.6 * y, decimals)
    assert M.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    p, r, t = M.precision_recall_curve(y, s)
    sp, sr, st = precision_recall_curve(y, s)
    np.testing.assert_allclose(p, sp, atol=1e-15)
    np.testing.assert_allclose(r, sr, atol=1e-15)
    np.testing.assert_allclose(t, st)
    fpr, tpr, _ = M.roc_curve(y, s)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    m = M.frame_metrics(y, probs=s / s.max())
    assert m["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_ap_auc_nan_when_undefined():
    neg = np.zeros(10, dtype=int)
    s = np.linspace(0, 1, 10)
    assert math.isnan(M.roc_auc(neg, s)) and math.isnan(M.average_precision(neg, s))
    assert math.isnan(M.roc_auc(np.ones(10, dtype=int), s))
    assert M.average_precision(np.ones(10, dtype=int), s) == 1.0
    m = M.frame_metrics(neg, probs=s)
    assert math.isnan(m["auc"]) and math.isnan(m["ap"]) and math.isnan(m["ap_legacy"])
    assert m["prevalence"] == 0.0
    # single class present: F1 of the absent class is 0 (sklearn zero_division=0), not a crash
    assert m["f1_pos"] == 0.0 and m["avgf1"] == pytest.approx(m["f1_neg"] / 2)


# --------------------------------------------------------------------------- inputs
def test_hand_computed_classification_metrics():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    pred = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    m = M.frame_metrics(y, preds=pred)
    assert m["acc"] == 6 / 8
    assert m["f1_pos"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert m["f1_neg"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    assert m["avgf1"] == pytest.approx((m["f1_pos"] + m["f1_neg"]) / 2)
    assert m["wf1"] == pytest.approx((3 * m["f1_pos"] + 5 * m["f1_neg"]) / 8)
    assert np.array_equal(m["confusion"], [[4 / 5, 1 / 5], [1 / 3, 2 / 3]])
    assert np.array_equal(m["confusion_counts"], [[4, 1], [1, 2]])
    assert math.isnan(m["ap"]) and math.isnan(m["ap_legacy"])  # no scores given


def test_torch_tensors_masks_and_batch_shapes():
    import torch

    rng = np.random.default_rng(5)
    lg = rng.normal(size=(3, 40, 2)).astype(np.float32) * 3
    y = (rng.random((3, 40)) < 0.3).astype(np.int64)
    mask = np.ones((3, 40), dtype=bool)
    mask[1, 25:] = False
    mask[2, 10:] = False
    got = M.frame_metrics(torch.from_numpy(y), logits=torch.from_numpy(lg), mask=torch.from_numpy(mask))
    want = M.frame_metrics(y[mask], logits=lg[mask])
    for k in ("acc", "avgf1", "wf1", "ap_legacy", "ap", "auc", "n"):
        assert got[k] == want[k], k
    assert got["n"] == int(mask.sum())
    # float16 tensors keep their dtype in compat mode (the AMP case)
    lg16 = torch.from_numpy(lg.reshape(-1, 2) * 4).half()
    a = M.frame_metrics(y.reshape(-1), logits=lg16, compat=True)
    b = M.frame_metrics(y.reshape(-1), logits=lg16.numpy(), compat=True)
    assert a["ap_legacy"] == b["ap_legacy"]
    bf = M.frame_metrics(y.reshape(-1), logits=torch.from_numpy(lg.reshape(-1, 2)).bfloat16())
    assert math.isfinite(bf["auc"])


def test_bad_input_errors_are_clear():
    with pytest.raises(ValueError, match="found 2 at index 3"):
        M.frame_metrics([0, 1, 0, 2], preds=[0, 0, 0, 0])
    with pytest.raises(ValueError, match="3 rows but labels has 4"):
        M.frame_metrics([0, 1, 0, 1], logits=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"shape \(..., 2\)"):
        M.frame_metrics([0, 1], logits=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no frames"):
        M.frame_metrics([0, 1], preds=[0, 1], mask=[False, False])
    with pytest.raises(ValueError, match="needs logits, probs or preds"):
        M.frame_metrics([0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.frame_metrics([0, 1], probs=[0.2, 1.5])


# --------------------------------------------------------------------------- registry
def test_metric_registry_and_selection_helpers():
    for name in ("avgf1", "ap_legacy", "ap", "auc", "acc", "wf1", "f1_pos", "f1_neg"):
        assert M.METRICS.get(name).higher_is_better
    assert M.metric_spec("video_mean_prob_avgf1").name == "avgf1"
    assert M.metric_spec("frame_ap_legacy").name == "ap_legacy"
    assert M.metric_spec("frame_ap").name == "ap"
    with pytest.raises(KeyError, match="registered: acc"):
        M.metric_spec("frame_bogus")
    assert M.is_better("frame_avgf1", 0.6, 0.5)
    assert not M.is_better("frame_avgf1", 0.5, 0.5)
    assert M.is_better("frame_avgf1", 0.5, None)
    assert not M.is_better("frame_auc", float("nan"), 0.1)
    assert M.is_better("frame_ap_legacy", 0.5, 0.5, ties_improve=True)  # the original's >=
    assert M.is_better("val_loss", 0.4, 0.5) and not M.is_better("val_loss", 0.6, 0.5)
    assert not M.is_better("frame_avgf1", 0.505, 0.5, min_delta=0.01)
    assert M.VIDEO_AGGREGATIONS.list() == ["mean_logit", "mean_prob", "vote"]


# --------------------------------------------------------------------------- video level
def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _video_case():
    # video 0 (label 1): preds 1, 1, 0
    # video 1 (label 1): preds 1, 0 -> a vote tie; first frame says 1, mean probability says 0
    # video 2 (label 0): one real frame (pred 0) and one masked-out frame that would flip it
    # video 3 (label 0): no frame at all -> absent from the video metrics
    vidx = np.array([0, 0, 0, 1, 1, 2, 2])
    lg = np.array([[0, 1], [0, 1], [1, 0], [0, 0.5], [0, -3], [2, 0], [0, 50]], dtype=np.float64)
    mask = np.array([1, 1, 1, 1, 1, 1, 0], dtype=bool)
    labels_video = np.array([1, 1, 0, 0])
    return vidx, lg, labels_video, mask


def test_video_aggregate_hand_made():
    vidx, lg, yv, mask = _video_case()
    vote = M.video_aggregate(vidx, lg, yv, how="vote", mask=mask)
    assert vote.video.tolist() == [0, 1, 2]
    assert vote.label.tolist() == [1, 1, 0]
    assert vote.n_frames.tolist() == [3, 2, 1]
    assert vote.pred.tolist() == [1, 0, 0]
    np.testing.assert_allclose(vote.score, [2 / 3, 1 / 2, 0.0], rtol=0, atol=1e-15)
    assert M.video_aggregate(vidx, lg, yv, how="vote", mask=mask, compat=True).pred.tolist() == [1, 1, 0]

    mp = M.video_aggregate(vidx, lg, yv, how="mean_prob", mask=mask)
    np.testing.assert_allclose(mp.score, [(2 * _sig(1) + _sig(-1)) / 3, (_sig(0.5) + _sig(-3)) / 2, _sig(-2)],
                               rtol=1e-14)
    assert mp.pred.tolist() == [1, 0, 0]

    ml = M.video_aggregate(vidx, lg, yv, how="mean_logit", mask=mask)
    np.testing.assert_allclose(ml.score, [_sig(1 / 3), _sig(-1.25), _sig(-2)], rtol=1e-14)
    assert ml.pred.tolist() == [1, 0, 0]
    # without the mask the 50-logit frame ties video 2's vote and flips its mean probability
    assert M.video_aggregate(vidx, lg, yv, how="mean_prob").pred.tolist() == [1, 0, 1]


def test_video_metrics_over_videos_hand_made():
    vidx, lg, yv, mask = _video_case()
    out = M.video_metrics(vidx, lg, yv, mask=mask)
    assert set(out) == {"FRAMES_VOTE", "FRAMES_AVG_PROBS", "FRAMES_AVG_LOGITS"}
    v = out["FRAMES_VOTE"]
    assert v["n"] == 3 and v["acc"] == pytest.approx(2 / 3)
    assert v["f1_pos"] == pytest.approx(2 / 3) and v["f1_neg"] == pytest.approx(2 / 3)
    assert v["avgf1"] == pytest.approx(2 / 3)
    assert v["auc"] == 1.0  # scores 2/3, 1/2 (positives) vs 0 (negative)
    assert M.video_metrics(vidx, lg, yv, mask=mask, compat=True)["FRAMES_VOTE"]["avgf1"] == 1.0
    flat = M.flatten_metrics(frame={"avgf1": 0.5, "confusion": None}, video=out)
    assert flat["frame_avgf1"] == 0.5 and "frame_confusion" not in flat
    assert flat["video_vote_avgf1"] == pytest.approx(2 / 3)
    assert "video_mean_logit_auc" in flat and "video_mean_prob_ap_legacy" in flat


def test_video_labels_from_frames_and_errors():
    assert M.video_labels_from_frames([0, 0, 2], [1, 1, 0]).tolist() == [1, -1, 0]
    with pytest.raises(ValueError, match="video index 1: frames carry different video labels"):
        M.video_labels_from_frames([0, 1, 1], [0, 0, 1])
    with pytest.raises(ValueError, match="labels_video has only 2 videos"):
        M.video_aggregate([0, 2], np.zeros((2, 2)), [0, 1], how="vote")
    with pytest.raises(KeyError, match="registered: mean_logit, mean_prob, vote"):
        M.video_aggregate([0], np.zeros((1, 2)), [0], how="median")


# --------------------------------------------------------------------------- participants
def test_participant_breakdown_hand_made():
    pid = np.array(["a", "a", "a", "a", "b", "b", "b", "c", "c", "c"])
    y = np.array([1, 1, 0, 0, 0, 0, 0, 1, 0, 1])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2, 0.7, 0.1, 0.8, 0.3, 0.95])
    mask = np.ones(10, dtype=bool)
    mask[9] = False  # c's third frame is padding
    table, summary = M.participant_breakdown(pid, y, probs=p, mask=mask)
    assert table.index.tolist() == ["a", "b", "c"]
    assert table["n"].tolist() == [4, 3, 2]
    assert table["single_class"].tolist() == [False, True, False]
    a, b, c = (table.loc[k] for k in "abc")
    assert (a["acc"], a["f1_pos"], a["f1_neg"], a["avgf1"]) == (0.5, 0.5, 0.5, 0.5)
    assert a["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3) and a["auc"] == 0.75
    assert b["acc"] == pytest.approx(2 / 3) and b["f1_neg"] == pytest.approx(0.8) and b["f1_pos"] == 0.0
    assert b["avgf1"] == pytest.approx(0.4)
    assert math.isnan(b["ap"]) and math.isnan(b["auc"]) and math.isnan(b["ap_legacy"])
    assert c["avgf1"] == 1.0 and c["ap"] == 1.0 and c["auc"] == 1.0
    s = summary.loc["avgf1"]
    assert s["mean"] == pytest.approx((0.5 + 0.4 + 1.0) / 3)
    assert s["std"] == pytest.approx(np.std([0.5, 0.4, 1.0]))
    assert (s["count"], s["excluded"]) == (3, 0)
    s = summary.loc["ap"]
    assert s["mean"] == pytest.approx((0.5 + 0.5 * 2 / 3 + 1.0) / 2)
    assert (s["count"], s["excluded"]) == (2, 1)
    assert summary.loc["auc", "mean"] == pytest.approx((0.75 + 1.0) / 2)


def test_participant_breakdown_with_logits_matches_frame_metrics():
    rng = np.random.default_rng(7)
    pid = rng.integers(0, 5, size=400)
    y = (rng.random(400) < 0.3).astype(np.int64)
    lg = rng.normal(size=(400, 2)) + np.c_[np.zeros(400), y]
    table, _ = M.participant_breakdown(pid, y, logits=lg)
    for k in range(5):
        sel = pid == k
        want = M.frame_metrics(y[sel], logits=lg[sel])
        for col in ("acc", "avgf1", "wf1", "ap", "auc", "ap_legacy"):
            assert table.loc[k, col] == want[col]
    with pytest.raises(ValueError, match="participant_ids: 3 values but labels has 400"):
        M.participant_breakdown(["a", "b", "c"], y, logits=lg)


# --------------------------------------------------------------------------- original outputs
def test_prediction_pkl_dict_round_trip(reference_dir):
    z = _fixture(reference_dir, "fp16_logits")
    lab, lg = z["labels"], z["logits"]
    # split the fixture frames into 4 "videos" of the original's prediction-<split>.pkl
    cuts = [0, 1000, 2500, 4200, 5000]
    preds = {}
    for k in range(4):
        sl = slice(cuts[k], cuts[k + 1])
        preds[f"Videos/{k}/Visite_1/q{k}.mp4"] = {"labels": lab[sl], "logits": lg[sl],
                                                 "g_labels": np.full(cuts[k + 1] - cuts[k], k % 2)}
    a = M.predictions_to_arrays(preds)
    assert a["logits"].dtype == np.float16 and a["labels_video"].tolist() == [0, 1, 0, 1]
    assert a["video_idx"].tolist()[999:1001] == [0, 1]
    out = M.evaluate_predictions(preds, compat=True)
    assert out["frames"]["ap_legacy"] == pytest.approx(float(z["AP_POS"]), abs=1e-12)  # pooling = original
    assert out["videos"]["FRAMES_VOTE"]["n"] == 4
    rec = M.perf_record(out["frames"], split="val")
    assert rec["split"] == "val" and rec["perfs_frames"]["MACRO_F1"] == pytest.approx(float(z["MACRO_F1"]), abs=1e-12)
    bad = {"Videos/9/Visite_1/x.mp4": {"labels": lab[:3], "logits": lg[:2]}}
    with pytest.raises(ValueError, match="Videos/9/Visite_1/x.mp4: logits shape"):
        M.predictions_to_arrays(bad)
    with pytest.raises(ValueError, match="x.mp4: prediction record has no 'logits'"):
        M.predictions_to_arrays({"Videos/9/Visite_1/x.mp4": {"labels": lab[:3]}})


def test_video_decision_is_the_centre_of_the_widest_near_best_plateau():
    # separable: negatives <= 0.2, positives >= 0.6, one of each on the edge; AVGF1 = 1 for
    # thresholds in (0.2, 0.6], and the two edges lose symmetrically (one FP / one FN)
    neg = [0.0, 0.05, 0.1, 0.2]
    pos = [0.6, 0.7, 0.8, 0.9]
    y = np.r_[np.zeros(4), np.ones(4)].astype(int)
    s = np.r_[neg, pos]
    d = M.fit_video_decision(y, s, "vote")
    assert d.threshold == pytest.approx(0.405)
    assert d.plateau[0] + d.plateau[1] == pytest.approx(0.81) and d.plateau[1] - d.plateau[0] > 0.3
    assert d.value == 1.0 and d.n_videos == 8 and d.metric == "avgf1"
    # the raw argmax would take the first perfect threshold, 0.21, one grid step from an error
    grid, values = M.threshold_curve(y, s)
    assert grid[int(np.argmax(values))] == pytest.approx(0.21)
    assert d.decide([0.39, 0.41, 0.405]).tolist() == [0, 1, 1]
    back = M.VideoDecision.from_dict(d.to_dict())
    assert back == d and back.original_name == "FRAMES_VOTE"
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        M.VideoDecision.from_dict({"aggregation": "median", "threshold": 0.3})
    with pytest.raises(ValueError, match="does not depend on a threshold"):
        M.fit_video_decision(y, s, "vote", metric="ap")


def test_video_metrics_with_a_decision_use_its_threshold():
    # 2 videos x 4 frames; video 0 (A/H) has 1 A/H frame in 4 (share 0.25), video 1 none
    vidx = np.repeat([0, 1], 4)
    lg = np.zeros((8, 2))
    lg[0, 1] = 1.0
    d = M.VideoDecision("vote", 0.2)
    out = M.video_metrics(vidx, lg, [1, 0], decision=d)
    assert out["FRAMES_VOTE"]["avgf1"] == pytest.approx(1 / 3)  # majority vote: both "No A-H"
    assert out[M.DECISION_NAME]["avgf1"] == 1.0
    assert M.flatten_metrics(video=out)["video_decision_avgf1"] == 1.0
