"""Protocols: grouped folds, test untouched by selection, seed ensembles."""
import csv

import numpy as np
import pytest
from challenge_data import make_release

from bah.apps.challenge.experiment import fit_video, mean_std
from bah.apps.challenge.features import WindowRule, load_video_table
from bah.apps.challenge.protocol import PROTOCOLS, grouped_folds, run_protocol
from bah.apps.challenge.report import SelectionLeakError, require_clean_selection, summary_markdown
from bah.apps.challenge.settings import ChallengeConfig
from bah.data import Release


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("rel"), participants=24, videos=4, splits=(14, 4, 6))


@pytest.fixture(scope="module")
def table(release):
    data, work = release
    return load_video_table(Release(data), ["train", "val", "test"], ["timing"], work, "split", WindowRule())[0]


def test_registry():
    assert PROTOCOLS.list() == ["challenge", "paper"]


def test_grouped_folds_never_split_a_participant_and_cover_the_pool_once():
    rng = np.random.default_rng(1)
    groups = np.repeat([f"p{i}" for i in range(30)], rng.integers(1, 8, 30))
    labels = rng.integers(0, 2, groups.size)
    folds = grouped_folds(labels, groups, 5, seed=3)
    assert len(folds) == 5
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(groups.size))
    owner = {}
    for k, held in enumerate(folds):
        for g in set(groups[held]):
            assert owner.setdefault(g, k) == k, f"participant {g} is in folds {owner[g]} and {k}"
    with pytest.raises(ValueError, match="at least 5 participants"):
        grouped_folds(labels[:3], np.array(["a", "b", "c"]), 5, 0)


def test_challenge_protocol_selects_on_out_of_fold_predictions_of_train_and_val(table):
    pr = run_protocol("challenge", table, {"learner": "logreg", "features": ["timing"]}, [0], folds=4)
    assert pr.selection_split == "oof"
    assert np.array_equal(pr.selection_rows, table.rows("train", "val"))
    assert np.array_equal(pr.test_rows, table.rows("test"))
    assert not set(pr.selection_rows) & set(pr.test_rows)
    for held in pr.folds:
        rest = np.setdiff1d(pr.selection_rows, held)
        assert not set(table.groups[held]) & set(table.groups[rest])
    paper = run_protocol("paper", table, {"learner": "logreg", "features": ["timing"]}, [0])
    assert paper.selection_split == "val" and np.array_equal(paper.selection_rows, table.rows("val"))


def test_seed_ensemble_is_the_mean_of_the_seeds_probabilities(table):
    spec = {"learner": "mil", "features": ["timing"], "epochs": 3}
    pr = run_protocol("paper", table, spec, [0, 1, 2])
    per = np.stack([s.test for s in pr.seeds])
    assert not np.allclose(per[0], per[1])  # seeds differ
    np.testing.assert_allclose(pr.test_probs, per.mean(axis=0))
    np.testing.assert_allclose(pr.selection_probs, np.mean([s.selection for s in pr.seeds], axis=0))
    ms = mean_std([{"avgf1": 0.5}, {"avgf1": 0.7}, {"avgf1": 0.9}])
    assert ms["mean"]["avgf1"] == pytest.approx(0.7) and ms["std"]["avgf1"] == pytest.approx(0.2)


def _shuffle_test_labels(data, seed):
    path = data / "split" / "test.txt"
    rows = [line.split(",", 2) for line in path.read_text().splitlines()]
    labels = np.random.default_rng(seed).permutation([r[1] for r in rows])
    if all(a == r[1] for a, r in zip(labels, rows)):
        labels = ["1" if x == "0" else "0" for x in labels]
    path.write_text("\n".join(f"{r[0]},{y},{r[2]}" for r, y in zip(rows, labels)) + "\n")


def _p1(run_dir, name):
    with open(run_dir / name) as fh:
        return [(r["video_id"], r["p1"], r["label"]) for r in csv.DictReader(fh)]


@pytest.mark.parametrize("protocol", ["paper", "challenge"])
def test_test_labels_change_nothing_that_is_selected(tmp_path, protocol):
    runs = []
    for k in range(2):
        data, work = make_release(tmp_path / f"r{k}", participants=24, videos=4, splits=(14, 4, 6))
        if k:
            _shuffle_test_labels(data, 0)
        cfg = ChallengeConfig(name="t", work=work, features=("timing",), protocol=protocol, folds=4, seeds=(0, 1),
                              candidates=({"learner": "tfidf-logreg"}, {"learner": "logreg", "features": ["timing"]},
                                          {"learner": "logreg", "features": ["timing"], "C": 0.01}))
        runs.append((fit_video(cfg, data, tmp_path / f"run{k}"), tmp_path / f"run{k}"))
    (a, da), (b, db) = runs
    for key in ("threshold", "learner", "candidates", "calibration"):
        assert a[key] == b[key], key
    assert a["metrics"]["selection"] == b["metrics"]["selection"]
    assert _p1(da, "predictions-test.csv") == _p1(db, "predictions-test.csv")
    assert a["metrics"]["test"]["ensemble"] != b["metrics"]["test"]["ensemble"]  # the shuffle was real


def test_selection_on_test_is_refused_by_every_report(release, tmp_path):
    data, work = release
    cfg = ChallengeConfig(name="leaky", work=work, features=("timing",), protocol="paper", seeds=(0,),
                          learner="logreg", select_on="test", calibration="argmax")
    run = fit_video(cfg, data, tmp_path)
    assert run["selection"] == {"split": "test", "n": 24, "touches_test": True}
    assert "refused" in run["metrics"]["test"] and run["calibration"]["optimistic"]
    with pytest.raises(SelectionLeakError, match="selected on the test split"):
        require_clean_selection(run)
    text = summary_markdown(run)
    assert "Test numbers withheld" in text and "| test |" not in text
    clean = fit_video(ChallengeConfig(name="ok", work=work, features=("timing",), protocol="paper", seeds=(0,),
                                      learner="logreg"), data, tmp_path / "ok")
    require_clean_selection(clean)
    assert "| test |" in summary_markdown(clean)


def test_bad_settings_fail_when_the_configuration_is_built():
    with pytest.raises(ValueError, match="learner 'logreg'"):
        ChallengeConfig(learner="logreg", learner_kwargs={"depth": 3})
    with pytest.raises(ValueError, match="learner 'tfidf-logreg'"):
        ChallengeConfig(learner="late-fusion", learner_kwargs={"members": [{"learner": "tfidf-logreg", "c": 1}]})
    with pytest.raises(ValueError, match="unknown MIL pooling 'median'"):
        ChallengeConfig(learner="mil", learner_kwargs={"pooling": "median"})
    with pytest.raises(ValueError, match="unknown calibration mode"):
        ChallengeConfig(calibration="youden")
    with pytest.raises(ValueError, match="use 'any' or 'fraction'"):
        ChallengeConfig(window_overlap="half")
