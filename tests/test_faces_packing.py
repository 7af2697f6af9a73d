"""Packing folders of frame-<k>.jpg crops, and the compatible scripts' flags."""
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bah.stages.faces.packing import PackError, find_crop_folders, frame_files, pack_block, pack_folder
from bah.stages.faces.stage import VideoJob
from bah.core.layout import video_dir

REPO = Path(__file__).resolve().parents[1]


def _crops(folder: Path, n: int, base: int, size: int = 32) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        # flat colours survive JPEG almost exactly, so the frame order is checkable
        Image.fromarray(np.full((size, size, 3), 20 * k + 10, np.uint8)).save(folder / f"frame-{k + base}.jpg", quality=95)


@pytest.mark.parametrize("base", [0, 1])
def test_pack_zero_and_one_based_folders(tmp_path, base):
    _crops(tmp_path / "crops", 11, base)  # 11 frames: frame-10 sorts before frame-2 as text
    res = pack_folder(tmp_path / "crops", tmp_path / "video.npy", 32)
    assert res["first_index"] == base and res["n_frames"] == 11 and res["resized"] == 0
    arr = np.load(tmp_path / "video.npy")
    assert arr.shape == (11, 32, 32, 3) and arr.dtype == np.uint8
    np.testing.assert_allclose(arr[:, 5, 5, 0], 20 * np.arange(11) + 10, atol=2)


def test_pack_resizes_and_checks_the_manifest_count(tmp_path):
    _crops(tmp_path / "c", 3, 0, size=40)
    res = pack_folder(tmp_path / "c", tmp_path / "v.npy", 16)
    assert res["resized"] == 3 and np.load(tmp_path / "v.npy").shape == (3, 16, 16, 3)
    with pytest.raises(PackError, match="3 crops but the manifest counts 4"):
        pack_folder(tmp_path / "c", tmp_path / "w.npy", 16, n_expected=4)
    assert not list(tmp_path.glob("*w.npy*"))  # nothing partial


def test_bad_crop_folders_name_the_problem(tmp_path):
    _crops(tmp_path / "gap", 4, 0)
    (tmp_path / "gap" / "frame-2.jpg").unlink()
    with pytest.raises(PackError, match="1 frame.s. missing, first frame-2.jpg"):
        frame_files(tmp_path / "gap")
    _crops(tmp_path / "late", 2, 5)
    with pytest.raises(PackError, match="starts at frame-5.jpg"):
        frame_files(tmp_path / "late")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackError, match="no frame-<k>.jpg"):
        frame_files(tmp_path / "empty")
    _crops(tmp_path / "broken", 2, 0)
    (tmp_path / "broken" / "frame-1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(PackError, match="frame-1.jpg: unreadable image"):
        pack_folder(tmp_path / "broken", tmp_path / "b.npy", 32)


def test_pack_block_finds_folders_and_lists_failures(tmp_path):
    crops = tmp_path / "cropped-aligned-faces"
    ids = ["Videos/1/Visite_1/a b.mp4", "Videos/2/Visite_1/c.mp4"]
    _crops(crops / ids[0], 3, 0)
    _crops(crops / ids[1], 2, 1)
    assert find_crop_folders(crops) == ids
    jobs = [VideoJob(v, crops / v, 0) for v in ids] + [VideoJob("Videos/3/Visite_1/none.mp4", crops, 0)]
    counts = pack_block(jobs, crops, tmp_path / "out", 32, progress=False)
    assert counts["done"] == 2 and counts["failed"] == 1 and counts["first_index"] == {"0": 1, "1": 1}
    assert np.load(video_dir(tmp_path / "out", ids[1]) / "video.npy").shape == (2, 32, 32, 3)
    again = pack_block(jobs[:2], crops, tmp_path / "out", 32, progress=False)
    assert again["skipped"] == 2


def test_compact_face_images_script_flags(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "abaw5_pre_processing" / "dlib"))
    try:
        import compact_face_images
    finally:
        sys.path.pop(0)
    crops = tmp_path / "crops"
    ids = [f"Videos/{i}/Visite_1/v{i}.mp4" for i in range(3)]
    for v in ids:
        _crops(crops / v, 2, 0)
    out = tmp_path / "out"
    monkeypatch.setenv("BAH_OUT", str(out))
    rc = compact_face_images.main(["--ds", "BAH_DB", "--split", "all", "--nparts", "2", "--part", "1",
                                   "--faces-dir", str(crops), "--size", "32", "--no-progress"])
    assert rc == 0
    # part 1 of 2 of three videos is the last one only
    assert [(video_dir(out, v) / "video.npy").exists() for v in ids] == [False, False, True]
    with pytest.raises(SystemExit):
        compact_face_images.main(["--ds", "AH"])


def test_bah_db_script_translates_the_original_flags(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "abaw5_pre_processing" / "dlib"))
    try:
        import bah_db
    finally:
        sys.path.pop(0)
    from bah import cli

    calls = []
    monkeypatch.setattr(cli, "main", lambda argv: calls.append(argv) or 0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").write_text("")
    for split in ("train", "val", "test"):
        assert bah_db.main(["--ds", "BAH_DB", "--split", split, "--nblocks", "8", "--process_block", "3",
                            "--out", str(out), "--size", "256"]) == 0
    assert calls[0] == ["faces", f"--out={out}", "--split", "train", "--nblocks", "8", "--process_block", "3",
                        "--size", "256"]
    assert [c[3] for c in calls] == ["train", "val", "test"]
    with pytest.raises(SystemExit):
        bah_db.main(["--ds", "AH"])
