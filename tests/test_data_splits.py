"""Split-file parsers: video level (id,label,transcript) and frame level; the real v2 split files."""
import numpy as np
import pytest

from bah.data import (
    SplitEntry, format_video_split_line, parse_video_id, read_frame_split, read_video_split,
)

VID_SPACE = "Videos/82557/Visite_1/82557 Question 5 2024-08-22 14-48-26 Video.mp4"
VID_DESKTOP = "Videos/82620/Visite_1/82620_Question_7_2024-11-05_14-58-50_Video-DESKTOP-NQ55E0P.mp4"
VID_PLAIN = "Videos/82725/Visite_1/82725_Question_1_2024-11-19_15-12-23_Video.mp4"


def _write(path, text):
    path.write_bytes(text.encode("utf-8"))
    return path


def test_video_split_commas_spaces_accents_and_missing_labels(tmp_path):
    p = _write(tmp_path / "train.txt", "\n".join([
        f"{VID_PLAIN},0,Well, when I wake up, I shower, then eat.",
        f"{VID_SPACE},1,Je suis allé à la café, ça va.",
        f"{VID_DESKTOP},,no label here",
        "",
        "Videos/1/Visite_1/1_Question_2_2024-01-01_00-00-00_Video.mp4,",
    ]) + "\n")
    entries = read_video_split(p)
    assert [e.video_id for e in entries] == [VID_PLAIN, VID_SPACE, VID_DESKTOP,
                                             "Videos/1/Visite_1/1_Question_2_2024-01-01_00-00-00_Video.mp4"]
    assert entries[0] == SplitEntry(VID_PLAIN, 0, "Well, when I wake up, I shower, then eat.", 1)
    assert entries[1].label == 1 and entries[1].transcript == "Je suis allé à la café, ça va."
    assert entries[2].label is None and entries[2].transcript == "no label here"
    assert entries[3].label is None and entries[3].transcript == "" and entries[3].lineno == 5


def test_video_split_crlf_and_bom(tmp_path):
    p = tmp_path / "val.txt"
    p.write_bytes(("\ufeff" + f"{VID_PLAIN},1,Hi, there\r\n").encode("utf-8"))
    (e,) = read_video_split(p)
    assert e.video_id == VID_PLAIN and e.transcript == "Hi, there"


@pytest.mark.parametrize("line, message", [
    ("no comma at all", "no comma"),
    (f"{VID_PLAIN},yes,text", "not an integer"),
    (f"{VID_PLAIN},2,text", "not 0 or 1"),
    (",1,text", "empty video id"),
])
def test_video_split_malformed_line_names_file_and_line(tmp_path, line, message):
    p = _write(tmp_path / "train.txt", f"{VID_SPACE},0,ok\n{line}\n")
    with pytest.raises(ValueError, match=message) as exc:
        read_video_split(p)
    assert f"{p}:2" in str(exc.value)


def test_video_split_duplicate_and_missing_file(tmp_path):
    p = _write(tmp_path / "t.txt", f"{VID_PLAIN},0,a\n{VID_PLAIN},1,b\n")
    with pytest.raises(ValueError, match=r"t.txt:2: .*already listed on line 1"):
        read_video_split(p)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_video_split(tmp_path / "nope.txt")


def test_format_line_round_trips(tmp_path):
    line = format_video_split_line(VID_SPACE, None, "a, b\nc")
    p = _write(tmp_path / "x.txt", line + "\n")
    (e,) = read_video_split(p)
    assert (e.video_id, e.label, e.transcript) == (VID_SPACE, None, "a, b c")


def test_frame_split_orders_by_index_and_reports_start(tmp_path):
    lines = [f"{VID_SPACE}/frame-{i}.jpg,{int(i >= 2)}" for i in (3, 0, 1, 2)]
    lines += [f"{VID_PLAIN}/frame-{i}.jpg,{i % 2}" for i in (1, 2, 3)]
    fl = read_frame_split(_write(tmp_path / "train.txt", "\n".join(lines) + "\n"))
    assert set(fl) == {VID_SPACE, VID_PLAIN}
    np.testing.assert_array_equal(fl[VID_SPACE], [0, 0, 1, 1])
    assert fl[VID_SPACE].dtype == np.uint8
    np.testing.assert_array_equal(fl[VID_PLAIN], [1, 0, 1])
    assert fl.first_index == {VID_SPACE: 0, VID_PLAIN: 1}
    assert dict(fl.items()).keys() == {VID_SPACE, VID_PLAIN}


def test_frame_split_gap_names_the_video(tmp_path):
    p = _write(tmp_path / "f.txt", "\n".join(f"{VID_DESKTOP}/frame-{i}.jpg,0" for i in (0, 1, 3)) + "\n")
    with pytest.raises(ValueError, match=r"82620_Question_7.*missing 2"):
        read_frame_split(p)


@pytest.mark.parametrize("line, message", [
    (f"{VID_PLAIN}/frame-0.jpg", "no comma"),
    (f"{VID_PLAIN}/img0.jpg,1", "is not"),
    (f"{VID_PLAIN}/frame-0.jpg,", "missing frame label"),
    (f"{VID_PLAIN}/frame-0.jpg,x", "not an integer"),
])
def test_frame_split_malformed_line(tmp_path, line, message):
    p = _write(tmp_path / "f.txt", f"{VID_SPACE}/frame-0.jpg,1\n{line}\n")
    with pytest.raises(ValueError, match=message) as exc:
        read_frame_split(p)
    assert f"{p}:2" in str(exc.value)


def test_real_published_splits(real_splits_dir):
    counts = {}
    participants = {}
    for split in ("train", "val", "test"):
        entries = read_video_split(real_splits_dir / f"{split}.txt")
        counts[split] = (len(entries), sum(e.label == 1 for e in entries))
        assert all(e.label in (0, 1) for e in entries)
        assert all(e.transcript for e in entries)
        names = [parse_video_id(e.video_id) for e in entries]
        assert all(n.question in range(1, 8) for n in names)
        # the participant parsed from the file name is the folder's
        assert all(n.pid == e.video_id.split("/")[1] for n, e in zip(names, entries))
        participants[split] = {n.pid for n in names}
    assert counts == {"train": (616, 340), "val": (110, 59), "test": (392, 239)}
    assert {k: len(v) for k, v in participants.items()} == {"train": 143, "val": 25, "test": 56}
    assert not participants["train"] & participants["val"]
    assert not participants["train"] & participants["test"]
    assert not participants["val"] & participants["test"]
