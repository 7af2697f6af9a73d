"""No code runs from a data file: a payload planted in every format bah reads is refused,
never executed, and the error names the file."""
import pickle

import numpy as np
import pytest
import torch

from bah.core.safe_pickle import UnsafePickleError, load_pickle
from bah.report.document import ReportError, load_predictions
from bah.stages.index import load_dataset_info, merge_part_infos
from bah.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from bah.train.normalization import load_or_compute_stats, read_stats, stats_key


class Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _dump(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_containers_and_numpy_round_trip(tmp_path, protocol):
    obj = {"train": {"trial": ["a", "b"], "length": [3, 4], "data_folder": "compacted_48"},
           "x": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(1.5), "i": np.int64(7),
           "t": (1, None, True), "set": {1, 2}, "u": np.array(["v"]), "strided": np.arange(10)[::3]}
    back = load_pickle(_dump(tmp_path / "ok.pkl", obj, protocol))
    assert back["train"] == obj["train"] and back["t"] == (1, None, True) and back["set"] == {1, 2}
    np.testing.assert_array_equal(back["x"], obj["x"])
    assert back["x"].dtype == np.float32 and back["s"] == 1.5 and back["i"] == 7
    np.testing.assert_array_equal(back["strided"], [0, 3, 6, 9])
    assert back["u"][0] == "v"


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "ran"
    path = _dump(tmp_path / "evil.pkl", {"a": [Payload(marker)]})
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refuses to load io\.open"):
        load_pickle(path)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match=r"junk\.pkl"):
        load_pickle(_write(tmp_path / "junk.pkl", b"not a pickle"))


def _write(path, data):
    path.write_bytes(data)
    return path


def test_dataset_info_payload_never_runs(tmp_path):
    marker = tmp_path / "ran"
    _dump(tmp_path / "dataset_info.pkl",
          {"train": {"trial": ["a"], "length": [1], "data_folder": Payload(marker)}})
    with pytest.raises(ValueError, match=r"dataset_info\.pkl.*refuses"):
        load_dataset_info(tmp_path)
    assert not marker.exists()


def test_original_part_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "ran"
    for s in ("train", "val", "test"):
        _dump(tmp_path / f"dataset_info_BAH_DB_{s}_1_0.pkl",
              {"trial": ["a"], "length": [1], "subject_no": [0], "trial_no": [0], "partition": [s],
               "pseudo_partition": [Payload(marker)] if s == "val" else [s]})
    with pytest.raises(ValueError, match=r"dataset_info_BAH_DB_val_1_0\.pkl.*refuses"):
        merge_part_infos(tmp_path)
    assert not marker.exists()


def test_prediction_payload_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = _dump(tmp_path / "prediction-test.pkl",
                 {"v1": {"labels": np.zeros(3), "logits": Payload(marker), "g_labels": np.zeros(3)}})
    with pytest.raises(ReportError, match=r"prediction-test\.pkl.*refuses"):
        load_predictions(path)
    assert not marker.exists()
    good = _dump(tmp_path / "prediction-val.pkl",
                 {"v1": {"labels": np.zeros(3), "logits": np.ones((3, 2), np.float32), "g_labels": np.zeros(3)}})
    assert load_predictions(good)["v1"]["logits"].shape == (3, 2)


def test_checkpoint_payload_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "last.pth"
    torch.save({"model": {"w": torch.ones(2)}, "epoch": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"last\.pth: refuses to load: it names io\.open"):
        load_checkpoint(path)
    assert not marker.exists()
    # what the trainer saves (numpy RNG state, numpy scalars, paths) loads under weights_only
    from bah.train.checkpoint import rng_state, set_rng_state

    save_checkpoint(path, {"rng": rng_state(), "best": np.float32(0.5), "path": tmp_path, "epoch": 1})
    ck = load_checkpoint(path)
    assert ck["best"] == 0.5 and ck["path"] == str(tmp_path)
    expected = np.random.rand(3)
    set_rng_state(ck["rng"])
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_original_model_checkpoint_payload_never_runs(tmp_path):
    from bah.models.checkpoint import read_state_dict

    marker = tmp_path / "ran"
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2), "evil": Payload(marker)}, path)
    with pytest.raises(RuntimeError, match=r"model\.pt"):
        read_state_dict(path)
    assert not marker.exists()


def test_stats_cache_is_npz_without_pickle(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    np.save(folder / "f.npy", np.arange(12, dtype=np.float32).reshape(6, 2))
    stats = load_or_compute_stats([folder], ["f"], tmp_path, {}, progress=False)
    cache = tmp_path / f"mean_std-{stats_key([folder], ['f'], {})}.npz"
    assert cache.is_file()
    np.testing.assert_allclose(read_stats(cache, ["f"])["f"].mean, [5.0, 6.0])
    # an object array planted in the cache is never unpickled: the cache is ignored and recomputed
    marker = tmp_path / "ran"
    evil = np.empty(2, dtype=object)
    evil[0] = Payload(marker)
    with open(cache, "wb") as fh:
        np.savez(fh, **{"f/mean": evil, "f/std": evil, "f/count": np.asarray(6)})
    again = load_or_compute_stats([folder], ["f"], tmp_path, {}, progress=False)
    assert not marker.exists()
    np.testing.assert_allclose(again["f"].mean, stats["f"].mean)
