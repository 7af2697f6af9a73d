"""Video learners: MIL poolings, text-anchored gated fusion, every registered learner fits and predicts."""
import math

import numpy as np
import pytest
import torch
from challenge_data import make_release

from bah.apps.challenge.features import WindowRule, load_video_table
from bah.apps.challenge.learners import VIDEO_LEARNERS
from bah.apps.challenge.learner import create_learner
from bah.apps.challenge.mil import POOLINGS, MILNet
from bah.data import Release

SCORES = torch.tensor([[1.0, 2.0, 3.0, 100.0], [0.5, -1.0, 7.0, 7.0]])
MASK = torch.tensor([[True, True, True, False], [True, True, True, True]])
HIDDEN = torch.zeros(2, 4, 8)


def test_pooling_registry():
    assert POOLINGS.list() == ["attention", "lse", "max", "mean"]


def test_max_and_mean_pooling_ignore_padded_windows():
    assert POOLINGS.create("max")(SCORES, HIDDEN, MASK).tolist() == [3.0, 7.0]
    assert POOLINGS.create("mean")(SCORES, HIDDEN, MASK).tolist() == pytest.approx([2.0, 13.5 / 4])


def test_lse_pooling_is_the_log_mean_exp_and_lies_between_mean_and_max():
    got = POOLINGS.create("lse", lse_r=2.0)(SCORES, HIDDEN, MASK)
    want0 = math.log((math.exp(2) + math.exp(4) + math.exp(6)) / 3) / 2
    want1 = math.log((math.exp(1) + math.exp(-2) + 2 * math.exp(14)) / 4) / 2
    assert got.tolist() == pytest.approx([want0, want1], rel=1e-6)
    assert 2.0 < got[0] < 3.0


def test_attention_pooling_with_constant_scores_is_the_mean_and_weights_sum_to_one():
    pool = POOLINGS.create("attention", hidden=8)
    torch.nn.init.zeros_(pool.w.weight)  # equal attention logits
    assert pool(SCORES, HIDDEN, MASK).tolist() == pytest.approx([2.0, 13.5 / 4])
    torch.manual_seed(0)
    pool = POOLINGS.create("attention", hidden=8)
    w = pool.weights(torch.randn(2, 4, 8), MASK)
    assert w[0, 3].item() == 0.0
    assert w.sum(dim=1).tolist() == pytest.approx([1.0, 1.0])


def test_gated_fusion_adds_other_modalities_to_the_text_anchor_only_through_gates():
    torch.manual_seed(0)
    net = MILNet({"text": 3, "audio": 2}, anchor="text", hidden=8, pooling="mean", dropout=0.0).eval()
    x = {"text": torch.randn(2, 4, 3), "audio": torch.randn(2, 4, 2)}
    out = net(x, MASK)
    assert out["logits"].shape == (2,) and out["window_logits"].shape == (2, 4)
    assert set(out["gates"]) == {"audio"} and out["gates"]["audio"].shape == (2, 4, 8)
    # closed gates: the audio channel has no effect, the output is the text branch alone
    torch.nn.init.zeros_(net.gates["audio"].weight)
    torch.nn.init.constant_(net.gates["audio"].bias, -1e4)
    closed = net(x, MASK)
    x2 = {"text": x["text"], "audio": x["audio"] * 100}
    assert torch.allclose(closed["logits"], net(x2, MASK)["logits"])
    text_only = net.head(net.encoders["text"](x["text"])).squeeze(-1)
    assert torch.allclose(closed["window_logits"], text_only)
    with pytest.raises(ValueError, match="anchor 'video' is not one of"):
        MILNet({"text": 3}, anchor="video")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    data, work = make_release(tmp_path_factory.mktemp("rel"), participants=12, videos=4, splits=(8, 2, 2))
    t, failures = load_video_table(Release(data), ["train", "val", "test"], ["timing", "text-embed"], work,
                                   "split", WindowRule())
    assert not failures
    return t


SPECS = {
    "logreg": {"features": ["timing"]},
    "gboost": {"features": ["timing"], "max_iter": 20},
    "tfidf-logreg": {},
    "mil": {"features": ["text-embed", "timing"], "anchor": "text-embed", "epochs": 3},
    "late-fusion": {"members": [{"learner": "tfidf-logreg"}, {"learner": "logreg", "features": ["timing"]}]},
}


def test_every_registered_learner_has_a_test_spec():
    assert sorted(SPECS) == VIDEO_LEARNERS.list()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_learner_fits_on_train_and_predicts_probabilities(table, name):
    train, test = table.take(table.rows("train")), table.take(table.rows("val", "test"))
    a = create_learner({"learner": name, **SPECS[name]}).fit(train, seed=0).predict(test)
    b = create_learner({"learner": name, **SPECS[name]}).fit(train, seed=0).predict(test)
    assert a.shape == (len(test),) and np.isfinite(a).all() and (a >= 0).all() and (a <= 1).all()
    np.testing.assert_array_equal(a, b)  # same seed, same predictions


def test_standardisation_is_fitted_on_the_training_rows_only(table):
    train = table.take(table.rows("train"))
    lr = create_learner({"learner": "logreg", "features": ["timing"]}).fit(train, 0)
    np.testing.assert_allclose(lr.model[0].mean_, train.pooled["timing"].mean(axis=0), rtol=1e-6)
    mil = create_learner({"learner": "mil", "features": ["timing"], "epochs": 1}).fit(train, 0)
    np.testing.assert_allclose(mil.model.mean["timing"], np.concatenate(train.windows["timing"]).mean(axis=0), rtol=1e-6)


def test_late_fusion_averages_its_members(table):
    train, test = table.take(table.rows("train")), table.take(table.rows("test"))
    members = [{"learner": "tfidf-logreg"}, {"learner": "logreg", "features": ["timing"]}]
    fused = create_learner({"learner": "late-fusion", "members": members, "weights": [3, 1]}).fit(train, 0)
    parts = [create_learner(m).fit(train, 0).predict(test) for m in members]
    np.testing.assert_allclose(fused.predict(test), 0.75 * parts[0] + 0.25 * parts[1])


def test_bad_specs_are_refused_with_the_learner_named(table):
    with pytest.raises(KeyError, match="unknown video learner 'svm'"):
        create_learner({"learner": "svm"})
    with pytest.raises(ValueError, match="learner 'logreg'"):
        create_learner({"learner": "logreg", "depth": 3})
    with pytest.raises(ValueError, match=r"features \['prosody'\] were not loaded"):
        create_learner({"learner": "logreg", "features": ["prosody"]}).fit(table, 0)
    with pytest.raises(ValueError, match="unlabelled"):
        unl = table.take(table.rows("train"))
        object.__setattr__(unl, "labels", np.full(len(unl), -1))
        create_learner({"learner": "tfidf-logreg"}).fit(unl, 0)
