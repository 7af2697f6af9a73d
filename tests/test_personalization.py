"""Personalisation mechanics (spec §3.4 tests 4, 5, 6): pure functions and tiny models, milliseconds."""
from pathlib import Path

import numpy as np
import pytest
import torch

from bah.train.dataset import WindowDataset, split_records, write_synthetic_arrays
from bah.models import create_model
from bah.apps.personalization import ADAPTERS, PAPER10, ProtocolError, create_adapter, plan_targets, select_targets
from bah.apps.personalization.adapters import AdaptationData, param_group_of
from bah.apps.personalization.adapters.base import masked_ce
from bah.apps.personalization.adapters.mmd import mmd2
from bah.apps.personalization.adapters.nrc import exclusion_mask, neighbours, nrc_weights
from bah.apps.personalization.adapters.shot import im_loss, shot_pseudo_labels
from bah.apps.personalization.adapters.subject import acpl_select, tau_schedule
from bah.apps.personalization.experiment import Unlabelled, predict_videos
from bah.apps.personalization.protocol import group_by_participant


# --------------------------------------------------------------------------- MMD
def _np_mmd(x, y, mul=2.0, num=5):
    t = np.concatenate([x, y]).astype(np.float64)
    d2 = ((t[:, None] - t[None]) ** 2).sum(-1)
    n = len(t)
    bw = d2.sum() / (n * n - n) / mul ** (num // 2)
    k = sum(np.exp(-d2 / (bw * mul ** i)) for i in range(num))
    a = len(x)
    return k[:a, :a].mean() + k[a:, a:].mean() - 2 * k[:a, a:].mean()


def test_mmd_estimator():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = torch.randn(64, 8, generator=g)
    assert abs(float(mmd2(x, x.clone()))) < 1e-6
    assert float(mmd2(x, y)) == pytest.approx(float(mmd2(y, x)), abs=1e-6)
    vals = [float(mmd2(x, y + off)) for off in (0.0, 0.5, 1.0, 2.0)]
    assert vals == sorted(vals) and vals[-1] > vals[0]
    assert float(mmd2(x, y + 1.0)) == pytest.approx(_np_mmd(x.numpy(), y.numpy() + 1.0), rel=1e-4)


# --------------------------------------------------------------------------- ACPL
def test_acpl_schedule_selection_and_balance():
    assert [round(tau_schedule(0.9, 0.02, r), 4) for r in range(3)] == [0.9, 0.88, 0.86]
    p1 = torch.tensor([[0.99, 0.01], [0.6, 0.4], [0.2, 0.8], [0.97, 0.03], [0.05, 0.95]])
    p2 = torch.tensor([[0.95, 0.05], [0.3, 0.7], [0.1, 0.9], [0.40, 0.60], [0.10, 0.90]])
    sel = acpl_select(p1, p2, 0.9)
    conf = (p1.max(1).values + p2.max(1).values) / 2
    assert torch.equal(sel["keep"], conf > 0.9)
    # row 1: view 2 is more confident (0.7 > 0.6) -> its label 1; row 3: view 1 (0.97) -> 0
    label = torch.where(p1.max(1).values >= p2.max(1).values, p1.argmax(1), p2.argmax(1))
    assert label[1] == 1 and label[3] == 0
    assert torch.equal(sel["labels"][sel["keep"]], label[sel["keep"]])
    assert (sel["labels"][~sel["keep"]] == -1).all()
    # class imbalance: a global threshold keeps only negatives, balance keeps both classes
    q = torch.tensor([[0.97, 0.03]] * 20 + [[0.2, 0.8]] * 4)
    assert set(acpl_select(q, q, 0.9)["labels"].tolist()) == {0, -1}
    assert {0, 1} <= set(acpl_select(q, q, 0.9, balance=True)["labels"].tolist())


# --------------------------------------------------------------------------- SHOT
def test_shot_im_loss_closed_form():
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    h = lambda q: -(q * np.log(q + 1e-5)).sum(-1)
    expected = h(p.numpy()).mean() - h(p.numpy().mean(0))
    assert float(im_loss(p)) == pytest.approx(expected, abs=1e-6)
    prior = torch.tensor([0.8, 0.2])
    m = p.mean(0)
    kl = float((m * torch.log((m + 1e-5) / (prior + 1e-5))).sum())
    assert float(im_loss(p, prior)) == pytest.approx(h(p.numpy()).mean() + kl, abs=1e-6)


def test_shot_clustering_beats_a_biased_classifier():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(100, 4, generator=g) * 0.3 + torch.tensor([2.0, 0, 0, 0])
    b = torch.randn(100, 4, generator=g) * 0.3 + torch.tensor([0, 2.0, 0, 0])
    feats, truth = torch.cat([a, b]), torch.cat([torch.zeros(100), torch.ones(100)]).long()
    # a classifier biased towards class 0: most of cluster b is called 0
    logit1 = feats[:, 1] - feats[:, 0] - 2.3
    probs = torch.stack([torch.sigmoid(-logit1), torch.sigmoid(logit1)], 1)
    argmax_acc = float((probs.argmax(1) == truth).float().mean())
    pseudo_acc = float((shot_pseudo_labels(feats, probs) == truth).float().mean())
    assert pseudo_acc > argmax_acc + 0.1 and pseudo_acc > 0.95


def test_masked_losses_ignore_padding_and_hidden_labels():
    logits = torch.randn(2, 5, 2)
    target = torch.tensor([[0, 1, -1, 1, 0], [1, 1, 0, 0, 1]])
    mask = torch.tensor([[True, True, True, False, False], [True, True, True, True, True]])
    keep = mask & (target >= 0)
    ref = torch.nn.functional.cross_entropy(logits[keep], target[keep])
    assert float(masked_ce(logits, target, mask)) == pytest.approx(float(ref))
    logits2 = logits.clone()
    logits2[0, 3:] = 1e6  # padded frames cannot change the loss
    assert float(masked_ce(logits2, target, mask)) == pytest.approx(float(ref))


# --------------------------------------------------------------------------- NRC
def test_nrc_neighbours_weights_and_exclusion():
    video = torch.tensor([0] * 10 + [1] * 10)
    frame = torch.cat([torch.arange(10), torch.arange(10)])
    bank = torch.nn.functional.normalize(torch.randn(20, 6, generator=torch.Generator().manual_seed(1)), dim=1)
    rows = torch.arange(20)
    near = neighbours(bank, rows, bank, video, frame, 3, 0)
    assert not (near == rows[:, None]).any()  # self is never a neighbour
    near_r = neighbours(bank, rows, bank, video, frame, 3, 2)
    same = video[near_r] == video[rows][:, None]
    assert not (same & ((frame[near_r] - frame[rows][:, None]).abs() <= 2)).any()
    ex = exclusion_mask(torch.tensor([4]), video, frame, 2)
    assert ex[0].nonzero().flatten().tolist() == [2, 3, 4, 5, 6]
    # weights: row 0's neighbours 5 and 7; 5 lists 0 twice (reciprocal), 7 never
    w = nrc_weights(torch.tensor([0]), torch.tensor([[5, 7]]), torch.tensor([[[0, 0, 3], [1, 2, 3]]]), 0.1)
    assert w.tolist() == [[2.0, pytest.approx(0.1)]]


# --------------------------------------------------------------------------- tiny model + data
def _tiny(tmp_path: Path, seed=0):
    root = write_synthetic_arrays(tmp_path / "d", {"train": [40, 30], "val": [30], "test": [36, 44, 28]},
                                  {"vggish": 6, "bert": 5}, seed=seed)
    recs = split_records(root, "test")
    model = create_model("can", [("vggish", 6), ("bert", 5)], tcn_channels={"vggish": [8], "bert": [8]})
    model.eval()
    return root, recs, model


def _data(recs, labelled, seed=0):
    win = WindowDataset(recs, ["vggish", "bert"], 16, 8, train=True, seed=seed)
    whole = WindowDataset(recs, ["vggish", "bert"], 16, 8, train=False)
    if not labelled:
        win, whole = Unlabelled(win), Unlabelled(whole)
    return AdaptationData(win, whole, [r.length for r in recs], torch.device("cpu"), seed)


class Sentinel(torch.utils.data.Dataset):
    def __len__(self):
        raise AssertionError("a source-free adapter touched the source data")

    def __getitem__(self, i):
        raise AssertionError("a source-free adapter touched the source data")


def test_adaptation_loaders_hide_labels(tmp_path):
    _, recs, _ = _tiny(tmp_path)
    d = _data(recs, labelled=False)
    s = d.windows[0]
    assert (s["target"] == -1).all() and (s["global_target"] == -1).all() and s["video_target"] == -1


@pytest.mark.parametrize("name", ADAPTERS.list())
def test_adapters_never_read_target_labels_and_source_free_never_read_source(tmp_path, name):
    """Permuting the target labels leaves every non-oracle result bit-identical; a source-free
    adapter never reads the source (a sentinel raises on access)."""
    root, recs, model = _tiny(tmp_path)
    params = {"steps": 3, "batch_size": 2} if ADAPTERS.get(name).learned else {}
    if name == "nrc":
        params.update(k=2, m=2, exclude_radius=1)
    outs = []
    for permute in (False, True):
        if permute:
            for r in recs:
                f = r.folder / "EXPR_continuous_label.npy"
                lab = np.load(f)
                np.save(f, np.random.RandomState(1).permutation(lab))
        torch.manual_seed(0)
        m = create_model("can", [("vggish", 6), ("bert", 5)], tcn_channels={"vggish": [8], "bert": [8]})
        m.load_state_dict(model.state_dict())
        adapter = create_adapter(name, params)
        labelled = adapter.uses_target_labels
        source = WindowDataset(split_records(root, "train"), ["vggish", "bert"], 16, 8, train=True)
        fitted = adapter.fit(m, _data(recs, labelled), source if adapter.needs_source else Sentinel())
        p = predict_videos(fitted, WindowDataset(recs, ["vggish", "bert"], 16, 8, train=False), torch.device("cpu"))
        outs.append(np.concatenate([p[v]["logits"] for v in sorted(p)]))
    if name == "oracle":
        assert not np.array_equal(outs[0], outs[1])  # the oracle does use labels
    else:
        assert np.array_equal(outs[0], outs[1])


def test_shot_freezes_the_head_and_nrc_banks_cover_valid_frames(tmp_path):
    _, recs, model = _tiny(tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shot = create_adapter("shot", {"steps": 4, "batch_size": 2})
    torch.manual_seed(0)
    out = shot.fit(model, _data(recs, False))
    head = [k for k, _ in out.named_parameters() if param_group_of(k) == "C"]
    assert head and all(torch.equal(out.state_dict()[k], before[k]) for k in head)
    assert any(not torch.equal(out.state_dict()[k], before[k]) for k, _ in out.named_parameters()
               if param_group_of(k) == "F")
    nrc = create_adapter("nrc", {"steps": 2, "batch_size": 2, "k": 2, "m": 2})
    nrc.fit(model, _data(recs, False))
    n = sum(r.length for r in recs)
    assert tuple(nrc.banks.feats.shape) == (n, model.fc1.in_features) and tuple(nrc.banks.scores.shape) == (n, 2)


def test_unknown_method_settings_are_named():
    with pytest.raises(ValueError, match="personalize.shot.*bogus"):
        create_adapter("shot", {"bogus": 1})
    with pytest.raises(KeyError, match="registered"):
        create_adapter("nope")


# --------------------------------------------------------------------------- protocol
def _vid(pid, q):
    return f"Videos/{pid}/Visite_1/{pid}_Question_{q}_Video.mp4"


def test_holdout_is_video_disjoint_deterministic_and_eligible():
    vids = [_vid("100", q) for q in range(1, 8)] + [_vid("200", q) for q in range(1, 8)] + [_vid("300", 1)]
    counts = {v: (5, 50) for v in vids}
    counts[_vid("200", 1)] = (5, 50)
    for q in range(2, 8):
        counts[_vid("200", q)] = (0, 50)  # only one A/H video: no eligible split
    by = group_by_participant(vids)
    plans = plan_targets(["100", "200", "300"], by, counts, "holdout", 3, 3, seed=0)
    p100, p200, p300 = plans
    assert not p100.excluded and len(p100.evaluation) == 3 and len(p100.adaptation) == 4
    assert not set(p100.evaluation) & set(p100.adaptation)
    assert "both" in p200.excluded and "fewer than 3" in p300.excluded
    again = plan_targets(["100"], by, counts, "holdout", 3, 3, seed=0)[0]
    assert again.folds == p100.folds
    other = [plan_targets(["100"], by, counts, "holdout", 3, 3, seed=s)[0].evaluation for s in range(6)]
    assert len({tuple(e) for e in other}) > 1  # the seed matters
    k = plan_targets(["100"], by, counts, "kfold", 3, 3, 0)[0]
    assert len(k.folds) == 7 and sorted(v for _, e in k.folds for v in e) == sorted(by["100"])
    t = plan_targets(["100"], by, counts, "transductive", 3, 3, 0)[0]
    assert t.folds == [(by["100"], by["100"])]


def test_target_selection(tmp_path):
    avail = ["1", "2", "3", "82711"]
    assert select_targets("all", avail) == ["1", "2", "3", "82711"]
    assert select_targets("list:3,1", avail) == ["3", "1"]
    (tmp_path / "t.txt").write_text("2  # comment\n\n82711\n")
    assert select_targets(f"file:{tmp_path / 't.txt'}", avail) == ["2", "82711"]
    s = select_targets("sample:2:7", avail)
    assert len(s) == 2 and s == select_targets("sample:2:7", avail)
    with pytest.raises(ProtocolError, match="not in the test split"):
        select_targets("paper10", avail)
    with pytest.raises(ProtocolError, match="99"):
        select_targets("list:99", avail)
    assert len(PAPER10) == 10


def test_paper10_matches_the_real_v2_test_split(real_splits_dir):
    from bah.data import read_video_split

    ids = [e.video_id for e in read_video_split(real_splits_dir / "test.txt")]
    by = group_by_participant(ids)
    assert select_targets("paper10", list(by)) == list(PAPER10)
    assert all(len(by[p]) == 7 for p in PAPER10)


def test_planted_shift_generator(tmp_path):
    from bah.apps.personalization import ShiftConfig, generate_planted_shift

    cfg = ShiftConfig(sources=3, references=1, targets=2, videos_per_subject=3, frames=60, dim=4, segment_max=20)
    res = generate_planted_shift(tmp_path, cfg)
    assert len(res.splits["train"]) == 9 and len(res.splits["test"]) == 6
    src = np.concatenate([np.load(r.folder / "bert.npy") for r in split_records(tmp_path, "train")])
    tgt = np.concatenate([np.load(r.folder / "bert.npy") for r in split_records(tmp_path, "test")])
    assert tgt.std() > 1.3 * src.std()  # scale 1.6 on the targets
    lab = np.load(split_records(tmp_path, "test")[0].folder / "EXPR_continuous_label.npy")
    assert lab.dtype == np.float32 and set(np.unique(lab)) <= {0.0, 1.0}
    assert (tmp_path / "split" / "test.txt").read_text().count("\n") == 6


def test_shipped_yaml_defaults_equal_the_built_in_ones():
    from bah.core.config import load_config

    path = Path(__import__("bah.apps.personalization", fromlist=["x"]).__file__).parent / "defaults.yaml"
    cfg = load_config(path, sections=["personalize"])["personalize"]
    for name in ADAPTERS.list():
        built = ADAPTERS.get(name).Params()
        from bah.apps.personalization.settings import method_params

        assert method_params(cfg, name) == built, name
    over = load_config(path, {"personalize.shot.beta": 0.5}, sections=["personalize"])["personalize"]
    assert method_params(over, "shot").beta == 0.5
