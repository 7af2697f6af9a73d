"""Release locator (all known trees), metadata and bah-video.csv."""
import numpy as np
import pytest

from bah.data import Release, read_metadata, read_video_csv

V1 = "Videos/82557/Visite_1/82557 Question 5 2024-08-22 14-48-26 Video.mp4"
V2 = "Videos/82620/Visite_1/82620_Question_7_2024-11-05_14-58-50_Video-DESKTOP-NQ55E0P.mp4"


def _w(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def _release_tree(root):
    _w(root / "split" / "train.txt", f"{V1},1,Hello, world\n")
    _w(root / "split" / "test.txt", f"{V2},,unlabelled\n")
    _w(root / "split-frames" / "train.txt", f"{V1}/frame-0.jpg,0\n{V1}/frame-1.jpg,1\n")
    _w(root / "class_id.yaml", "With A-H: 1\nNo A-H: 0")
    _w(root / "video_annotation.yaml", f"'{V1}':\n  global_ah: 1\n  frame_annotation: [['{V1}/frame-0.jpg', 1]]\n")
    _w(root / "transcription" / V1 / "82557 Question 5 2024-08-22 14-48-26 Video.yml",
       "text: hi\nchunks:\n- text: hi\n  timestamp: !!python/tuple [0.0, null]\n")
    _w(root / "meta_data.yml", "82557:\n  Age: 31\n  Gender: F\n'82620':\n  Age: 40\n")
    _w(root / "bah-video.csv", f"video-path,label\n{V1},1\n{V2},0\n")
    return root


def test_release_locates_everything(tmp_path):
    r = Release(_release_tree(tmp_path / "BAH"))
    assert r.splits == ["train", "test"]  # val missing: fine
    assert [e.video_id for e in r.video_split("train")] == [V1]
    assert r.entries()["test"][0].label is None
    with pytest.raises(FileNotFoundError, match="val.txt"):
        r.video_split("val")
    assert r.frame_split_paths() == {"train": r.root / "split-frames" / "train.txt"}
    np.testing.assert_array_equal(r.frame_labels("train")[V1], [0, 1])
    assert r.class_ids() == {"With A-H": 1, "No A-H": 0}
    assert r.annotation_path.name == "video_annotation.yaml"  # the older name is accepted
    assert r.annotations()[V1].global_label == 1
    assert r.video_path(V1) == r.root / V1
    assert r.transcription(V1, duration=3.0).chunks[0].end == 3.0
    assert r.transcription_path(V2) is None
    assert r.metadata() == {"82557": {"Age": 31, "Gender": "F"}, "82620": {"Age": 40}}
    assert [(v.video_id, v.label) for v in r.video_list()] == [(V1, 1), (V2, 0)]
    with pytest.raises(ValueError, match="unsafe"):
        r.video_path("../etc/passwd")


def test_release_name_of_annotation_file_preferred(tmp_path):
    root = _release_tree(tmp_path / "BAH")
    _w(root / "video_annotation_transcript.yaml", "{}\n")
    assert Release(root).annotation_path.name == "video_annotation_transcript.yaml"


@pytest.mark.parametrize("folder", ["folds/BAH_DB/split-0", "folds/split-0", "."])
def test_split_folder_fallbacks(tmp_path, folder):
    _w(tmp_path / folder / "val.txt", f"{V1},0,x\n")
    _w(tmp_path / folder / "class_id.yaml", "With A-H: 1\nNo A-H: 0")
    r = Release(tmp_path)
    assert r.splits == ["val"] and r.class_ids_path is not None
    assert r.video_split("val")[0].video_id == V1


def test_release_without_splits_and_missing_root(tmp_path):
    r = Release(tmp_path)
    assert r.splits == [] and r.annotation_path is None
    assert r.class_ids() == {"With A-H": 1, "No A-H": 0}
    with pytest.raises(FileNotFoundError, match="no split file train.txt"):
        r.video_split("train")
    with pytest.raises(FileNotFoundError, match="meta_data"):
        r.metadata()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Release(tmp_path / "nope")


def test_metadata_errors(tmp_path):
    p = _w(tmp_path / "meta_data.yml", "82557: [1, 2]\n")
    with pytest.raises(ValueError, match=r"meta_data.yml: participant '82557'"):
        read_metadata(p)
    _w(p, "82557: {Age: 1}\n'82557': {Age: 2}\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_metadata(p)


def test_video_csv(tmp_path):
    p = _w(tmp_path / "bah-video.csv", f"video-path,label\n{V1},1\n{V2},\n")
    rows = read_video_csv(p)
    assert [(r.video_id, r.label, r.lineno) for r in rows] == [(V1, 1, 2), (V2, None, 3)]
    _w(p, f"path,label\n{V1},1\n")
    with pytest.raises(ValueError, match=r"bah-video.csv:1: expected the header"):
        read_video_csv(p)
    _w(p, f"video-path,label\n{V1},one\n")
    with pytest.raises(ValueError, match=r"bah-video.csv:2: label"):
        read_video_csv(p)
