"""Window labels from A/H segments, and loading the video-feature contract into a table."""
import json

import numpy as np
import pytest
from challenge_data import make_release

from bah.apps.challenge.features import WindowRule, load_video_table, merge_segments, window_labels
from bah.core.layout import video_features_dir, video_key
from bah.data import Release

TIMES = np.array([[0.0, 5.0], [2.5, 7.5], [5.0, 10.0], [7.5, 12.5], [10.0, 15.0]])


def test_any_overlap_marks_every_touched_window_but_not_a_shared_instant():
    # segment 6.0-8.0 overlaps windows 1 (2.5-7.5), 2 (5-10), 3 (7.5-12.5); window 0 ends at 5.0
    got = window_labels(TIMES, [(6.0, 8.0)], WindowRule("any"))
    assert got.tolist() == [0, 1, 1, 1, 0]
    assert window_labels(TIMES, [(5.0, 5.0)], WindowRule("any")).tolist() == [0, 0, 0, 0, 0]
    assert window_labels(TIMES, [(12.5, 14.0)], WindowRule("any")).tolist() == [0, 0, 0, 0, 1]


def test_fraction_rule_counts_overlap_over_window_length():
    # 5.0-8.0: window 1 overlaps 2.5 s (0.5), window 2 3.0 s (0.6), window 3 0.5 s (0.1)
    seg = [(5.0, 8.0)]
    assert window_labels(TIMES, seg, WindowRule("fraction", 0.5)).tolist() == [0, 1, 1, 0, 0]
    assert window_labels(TIMES, seg, WindowRule("fraction", 0.55)).tolist() == [0, 0, 1, 0, 0]
    assert window_labels(TIMES, seg, WindowRule("fraction", 0.1)).tolist() == [0, 1, 1, 1, 0]


def test_overlapping_segments_are_merged_before_the_fraction():
    # two annotations of the same 1.5 s: counted once, so 1.5/5 = 0.3 < 0.5
    segs = [(0.0, 1.5), (0.5, 1.5)]
    assert merge_segments(segs).tolist() == [[0.0, 1.5]]
    assert window_labels(TIMES[:1], segs, WindowRule("fraction", 0.3)).tolist() == [1]
    assert window_labels(TIMES[:1], segs, WindowRule("fraction", 0.31)).tolist() == [0]
    assert window_labels(TIMES, [], WindowRule()).tolist() == [0, 0, 0, 0, 0]


def test_bad_rule_is_refused():
    with pytest.raises(ValueError, match="use 'any' or 'fraction'"):
        WindowRule("most")
    with pytest.raises(ValueError, match="must lie in"):
        WindowRule("fraction", 0.0)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("rel"), participants=12, videos=3, splits=(6, 3, 3))


def test_table_holds_labels_participants_text_and_window_labels(release):
    data, work = release
    rel = Release(data)
    table, failures = load_video_table(rel, ["train", "val", "test"], ["timing"], work, "split", WindowRule("any"))
    assert failures == []
    assert len(table) == 36
    assert table.splits.tolist() == ["train"] * 18 + ["val"] * 9 + ["test"] * 9
    entries = rel.video_split("train")
    assert table.labels[:18].tolist() == [e.label for e in entries]
    assert table.text[0] == entries[0].transcript
    assert table.groups[0] == entries[0].video_id.split("/")[1]
    assert table.pooled["timing"].shape == (36, 3)
    assert table.windows["timing"][0].shape == (7, 3)
    ann = rel.annotations([table.ids[0]])[table.ids[0]]
    expect = window_labels(table.window_times[0], ann.intervals_seconds, WindowRule("any"))
    np.testing.assert_array_equal(table.window_labels[0], expect)
    # positives carry a segment, so some window is positive; negatives none
    for y, wl in zip(table.labels, table.window_labels):
        assert (wl.max() == 1) == (y == 1)
    sub = table.take([3, 1])
    assert sub.ids == (table.ids[3], table.ids[1])
    np.testing.assert_array_equal(sub.pooled["timing"], table.pooled["timing"][[3, 1]])


def test_a_bad_video_is_named_in_the_failures_and_the_rest_load(release, tmp_path):
    data, work = release
    rel = Release(data)
    vid = rel.video_split("val")[0].video_id
    bad_work = tmp_path / "work"
    d = video_features_dir(bad_work, "timing")
    d.mkdir(parents=True)
    src = video_features_dir(work, "timing")
    (d / "meta.json").write_text((src / "meta.json").read_text())
    for p in src.glob("*.npz"):
        (d / p.name).write_bytes(p.read_bytes())
    np.savez(d / f"{video_key(vid)}.npz", windows=np.zeros((7, 2), np.float32), window_times=np.zeros((7, 2)),
             video=np.zeros(2, np.float32), names=np.array(["a", "b"]))
    missing = rel.video_split("test")[0].video_id
    (d / f"{video_key(missing)}.npz").unlink()
    table, failures = load_video_table(rel, ["train", "val", "test"], ["timing"], bad_work)
    assert len(table) == 34
    by_id = {f.video_id: f.reason for f in failures}
    assert set(by_id) == {vid, missing}
    assert "meta.json says dim 3" in by_id[vid] and video_key(vid) in by_id[vid]
    assert "missing" in by_id[missing]


def test_missing_meta_names_the_file(release, tmp_path):
    data, _ = release
    with pytest.raises(FileNotFoundError, match="meta.json"):
        load_video_table(Release(data), ["train"], ["timing"], tmp_path)


def test_transcripts_from_the_work_folder(release, tmp_path):
    data, _ = release
    rel = Release(data)
    vid = rel.video_split("train")[0].video_id
    from bah.core.layout import transcript_path

    p = transcript_path(tmp_path, vid)
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"text": " hello there", "chunks": [{"text": " hello there", "timestamp": [0.0, 1.0]}]}))
    table, failures = load_video_table(rel, ["train"], [], tmp_path, "transcripts")
    assert table.text[0] == " hello there"
    assert len(failures) == len(rel.video_split("train")) - 1
    assert all("bah transcribe" in f.reason for f in failures)
