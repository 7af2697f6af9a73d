"""Windows, padding rows, item index, stitching and the toy split order (reference fixture §4)."""
import numpy as np
import pytest

from bah.train.dataset import LABEL, DataError, WindowDataset, collate, split_records, write_synthetic_arrays
from bah.train.windows import item_index, item_rows, stitch, train_items, window_bounds


@pytest.fixture(scope="module")
def fx(reference_dir):
    return np.load(reference_dir / "fixtures" / "windowing.npz")


def test_windows_padding_index_and_stitching_match_fixture(fx):
    for i, (n, w, h) in enumerate(fx["cases_N_window_hop"]):
        b = window_bounds(int(n), int(w), int(h))
        np.testing.assert_array_equal(np.stack([np.arange(s, e) for s, e in b]), fx[f"case{i:02d}_arranger_windows"])
        np.testing.assert_array_equal(np.stack([item_rows(s, e, w) for s, e in b]), fx[f"case{i:02d}_item_rows"])
        np.testing.assert_array_equal(np.stack([item_index(s, e, w) for s, e in b]), fx[f"case{i:02d}_item_index"])
        key = f"case{i:02d}_lfan_stitched"
        if key in fx.files:  # stand-in model: logit0 = window start, logit1 = position in window
            outs = [np.stack([np.full(e - s, s), np.arange(e - s)], 1).astype(np.float32) for s, e in b]
            np.testing.assert_array_equal(stitch(outs, b, int(n)), fx[key])


def test_toy_split_order_matches_fixture(fx):
    items = train_items(fx["toysplit_train_lengths"], 696, 48, seed=0)
    assert len(items) == 34
    np.testing.assert_array_equal([v for v, _, _ in items], fx["toysplit_train_video"])
    np.testing.assert_array_equal([(s, e) for _, s, e in items], fx["toysplit_train_start_end"])


def test_hop_larger_than_window_leaves_frames_uncovered():
    assert window_bounds(10, 3, 5) == [(0, 3), (5, 8), (7, 10)]
    with pytest.raises(ValueError):
        window_bounds(0, 3, 1)


def _labelled(tmp_path, lengths):
    """Arrays whose values are the frame number, to read back which row an item took."""
    out = write_synthetic_arrays(tmp_path, lengths, {"feat": 2})
    for split, recs in ((s, split_records(out, s)) for s in lengths):
        for r in recs:
            np.save(r.folder / "feat.npy", np.stack([np.arange(r.length)] * 2, 1).astype(np.float32))
            np.save(r.folder / f"{LABEL}.npy", (np.arange(r.length) >= r.length - 3).astype(np.float32))
    return out


def test_dataset_items_pad_and_mask(tmp_path):
    out = _labelled(tmp_path, {"train": [5, 20], "val": [5], "test": [20]})
    tr = WindowDataset(split_records(out, "train"), ["feat"], 8, 4, train=True, shuffles=0)
    assert [(v, s, e) for v, s, e in tr.items] == [(0, 0, 5), (1, 0, 8), (1, 4, 12), (1, 8, 16), (1, 12, 20)]
    it = tr[0]
    np.testing.assert_array_equal(it["inputs"]["feat"][:, 0], [0, 1, 2, 3, 4, 4, 4, 4])  # last row repeated
    np.testing.assert_array_equal(it["mask"], [1, 1, 1, 1, 1, 0, 0, 0])  # padded frames not scored
    np.testing.assert_array_equal(it["target"], [0, 0, 1, 1, 1, 1, 1, 1])
    # compat: padded frames are scored as the original; global label = window max
    trc = WindowDataset(split_records(out, "train"), ["feat"], 8, 4, train=True, shuffles=0, compat=True)
    assert trc[0]["mask"].all()
    assert trc[1]["global_target"].max() == 0 and tr[1]["global_target"].min() == 1  # window vs video scope
    # evaluation: whole videos, padded only in compat
    ev = WindowDataset(split_records(out, "val"), ["feat"], 8, 4, train=False)
    assert len(ev[0]["target"]) == 5
    evc = WindowDataset(split_records(out, "val"), ["feat"], 8, 4, train=False, compat=True)
    assert len(evc[0]["target"]) == 8 and evc[0]["mask"].all()
    b = collate([tr[0], tr[1]])
    assert b["inputs"]["feat"].shape == (2, 8, 2) and b["mask"].dtype.is_floating_point is False
    assert b["video_id"][0].endswith(".mp4") and b["frame_idx"].shape == (2, 8)


def test_dataset_bad_inputs(tmp_path):
    out = _labelled(tmp_path, {"train": [10, 12], "val": [5], "test": [5]})
    recs = split_records(out, "train")
    np.save(recs[0].folder / "feat.npy", np.zeros((9, 2), np.float32))
    with pytest.raises(DataError, match="disagree in length"):
        WindowDataset(recs, ["feat"], 4, 2, train=True)
    (recs[0].folder / "feat.npy").unlink()
    with pytest.raises(DataError, match="missing feature file"):
        WindowDataset(recs, ["feat"], 4, 2, train=True)
    ds = WindowDataset(recs, ["feat"], 4, 2, train=True, compat=True)  # compat: zeros with a warning
    assert all(np.all(ds[i]["inputs"]["feat"] == 0) for i in range(len(ds)) if ds.items[i][0] == 0)
    bad = np.arange(24, dtype=np.float32).reshape(12, 2)
    bad[3, 1] = np.nan
    np.save(recs[1].folder / "feat.npy", bad)
    ds = WindowDataset(recs[1:], ["feat"], 4, 2, train=True, shuffles=0)
    with pytest.raises(DataError, match="NaN"):
        ds[1]
    with pytest.raises(DataError, match="empty"):
        WindowDataset([], ["feat"], 4, 2, train=True)


def test_split_file_naming_absent_video(tmp_path):
    out = _labelled(tmp_path, {"train": [10], "val": [5], "test": [5]})
    sd = tmp_path / "split"
    sd.mkdir()
    (sd / "train.txt").write_text("Videos/99/Visite_1/nope.mp4,1,hello\n")
    with pytest.raises(DataError, match="absent from the index"):
        split_records(out, "train", sd)
    (sd / "train.txt").write_text("garbage line\n")
    with pytest.raises(DataError, match="train.txt:1"):
        split_records(out, "train", sd)
