"""Every input array is checked before the run folder exists: problems are reported at once,
each naming its file, and nothing is written or trained."""
import numpy as np
import pytest

from bah.train import engine
from bah.train.cli import main
from bah.train.dataset import split_records, write_synthetic_arrays
from bah.train.validation import check_arrays

LENGTHS = {"train": [40, 30, 35], "val": [30, 25], "test": [28, 33]}


@pytest.fixture()
def data(tmp_path):
    return write_synthetic_arrays(tmp_path / "d", LENGTHS, {"vggish": 6, "bert": 5}, seed=4)


def _argv(data, runs, modality="vggish+bert"):
    return ["--dataset_path", str(data), "--output_root", str(runs), "--exp_id", "v", "--model_name", "can",
            "--modality", modality + "+EXPR_continuous_label", "--window_length", "16", "--hop_length", "8",
            "--num_workers", "0", "--num_epochs", "1", "--verbose", "False", "--save_plot", "False"]


@pytest.fixture()
def no_training(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(engine, "train_one_epoch", fail)


def test_nan_in_a_test_split_feature_stops_before_epoch_0_naming_the_file(data, tmp_path, capsys, no_training):
    bad = split_records(data, "test")[1].folder / "bert.npy"
    x = np.load(bad)
    x[7, 2] = np.nan
    np.save(bad, x)
    assert main(_argv(data, tmp_path / "runs")) == 2
    err = capsys.readouterr().err
    assert f"{bad}: NaN or inf values" in err and "nothing was written" in err
    assert not (tmp_path / "runs").exists()


def test_every_problem_is_listed_with_its_file(data, tmp_path, capsys, no_training):
    train = split_records(data, "train")
    np.save(train[0].folder / "vggish.npy", np.zeros((40, 7), np.float32))  # 7 columns, the others have 6
    (train[1].folder / "bert.npy").write_text("not an array")
    np.save(train[2].folder / "bert.npy", np.zeros((12, 5), np.float32))  # 12 rows, the index says 35
    assert main(_argv(data, tmp_path / "runs")) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    assert f"{train[0].folder / 'vggish.npy'}: shape (40, 7) has trailing dims (7,)" in err
    assert f"{train[1].folder / 'bert.npy'}: not a readable .npy array" in err
    assert f"{train[2].folder / 'bert.npy'}: 12 rows, the index says 35" in err
    assert not (tmp_path / "runs").exists()


def test_unknown_modality_is_one_message_and_no_run_folder(data, tmp_path, capsys, no_training):
    assert main(_argv(data, tmp_path / "runs", modality="vgish+bert")) == 2
    err = capsys.readouterr().err
    assert "modality 'vgish': no vgish.npy in any of the 7 videos" in err and "'vggish'" in err
    assert err.count("vgish.npy") == 2  # one line, not one per video
    assert not (tmp_path / "runs").exists()


def test_compat_accepts_a_missing_optional_feature_in_some_videos(data):
    recs = split_records(data, "train")
    (recs[0].folder / "bert.npy").unlink()
    assert check_arrays(recs, ["vggish", "bert"], compat=True) == []
    assert check_arrays(recs, ["vggish", "bert"], compat=False) == [f"{recs[0].folder / 'bert.npy'}: missing"]


def test_faces_shape_and_dtype(tmp_path):
    d = write_synthetic_arrays(tmp_path / "f", {"train": [10, 12], "val": [9], "test": [9]}, {"vggish": 3},
                               face_size=8)
    recs = split_records(d, "train")
    assert check_arrays(recs, ["video", "vggish"]) == []
    np.save(recs[1].folder / "video.npy", np.zeros((12, 8, 8), np.uint8))
    np.save(recs[0].folder / "vggish.npy", np.array([["a"] * 3] * 10))
    problems = check_arrays(recs, ["video", "vggish"])
    assert problems == [f"{recs[0].folder / 'vggish.npy'}: dtype <U1 is not numeric",
                        f"{recs[1].folder / 'video.npy'}: faces must be (N, S, S, 3), found (12, 8, 8)"]
