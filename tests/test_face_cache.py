"""The face cache: faces stored at another size are resized once per video, and the batches
are the same to the bit as resizing every window."""
import json
import os
import re
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from bah.core.lock import FileLock
from bah.train import face_cache
from bah.train.dataset import write_synthetic_arrays
from bah.train.distributed import DistInfo
from bah.train.face_cache import FaceCache, FaceCacheError
from bah.train.options import parse_options
from bah.train.trainer import build_datasets, make_loader

LENGTHS = {"train": [150, 90], "val": [70], "test": [60]}


def options(root, *extra):
    return parse_options(["--dataset_path", str(root), "--modality", "video+vggish+EXPR_continuous_label",
                          "--window_length", "64", "--hop_length", "32", "--num_workers", "0",
                          "--verbose", "False", *extra])


def batches(o, split, n=3):
    ds = build_datasets(o, splits=(split,), faces_in_workers=True)[split]
    dl = make_loader(ds, 2, split == "train", o, DistInfo(), epoch_seed=0)
    out = []
    for b in dl:
        out.append(b)
        if len(out) == n:
            break
    return ds, out


@pytest.fixture(scope="module")
def root128(tmp_path_factory):
    return write_synthetic_arrays(tmp_path_factory.mktemp("faces128"), LENGTHS, {"vggish": 8}, face_size=128)


@pytest.mark.parametrize("compat", [False, True])
@pytest.mark.parametrize("split", ["train", "val"])
def test_cached_batches_equal_per_window_resize(root128, tmp_path, split, compat):
    flags = ["--compat"] if compat else []
    ds_off, ref = batches(options(root128, "--face_cache", "off", *flags), split)
    ds_on, got = batches(options(root128, "--face_cache", str(tmp_path / "cache"), *flags), split)
    assert all(v.faces is None for v in ds_off.videos)
    assert all(v.faces is not None and v.faces.parent == tmp_path / "cache" for v in ds_on.videos)
    assert np.load(ds_on.videos[0].faces, mmap_mode="r").shape[1:] == (48, 48, 3)
    for a, b in zip(ref, got):
        assert a["video_id"] == b["video_id"]
        assert torch.equal(a["inputs"]["video"], b["inputs"]["video"])  # to the bit, crops and flips included
        assert torch.equal(a["inputs"]["vggish"], b["inputs"]["vggish"])


def test_default_folder_is_next_to_the_stats_cache_and_reused(root128, tmp_path):
    o = options(root128, "--stats_cache", str(tmp_path))
    ds, _ = batches(o, "val", 1)
    f = ds.videos[0].faces
    assert f.parent == tmp_path / "face-cache" and f.name.startswith("faces-48px-")
    mtime = f.stat().st_mtime_ns
    ds2, _ = batches(o, "val", 1)
    assert ds2.videos[0].faces == f and f.stat().st_mtime_ns == mtime  # read again, not rebuilt


def test_no_cache_when_faces_are_stored_at_the_training_size(tmp_path):
    root = write_synthetic_arrays(tmp_path / "d", LENGTHS, {"vggish": 8}, face_size=48)
    ds, _ = batches(options(root, "--face_cache", str(tmp_path / "cache")), "val", 1)
    assert ds.videos[0].faces is None and not (tmp_path / "cache").exists()


def test_a_changed_video_gets_a_new_file(tmp_path):
    root = write_synthetic_arrays(tmp_path / "d", LENGTHS, {"vggish": 8}, face_size=96)
    o = options(root, "--face_cache", str(tmp_path / "cache"))
    ds, _ = batches(o, "val", 1)
    src, old = ds.videos[0].folder / "video.npy", ds.videos[0].faces
    faces = np.load(src)
    np.save(src, 255 - faces)  # re-extracted faces: same shape, new content and mtime
    os.utime(src, ns=(old.stat().st_mtime_ns + 10**9, old.stat().st_mtime_ns + 10**9))
    ds2, [b] = batches(o, "val", 1)
    assert ds2.videos[0].faces != old
    ref = FaceCache(tmp_path / "cache", 48, False)
    np.testing.assert_array_equal(np.load(ds2.videos[0].faces), np.load(ref.target(src)))
    _, [b_off] = batches(options(root, "--face_cache", "off"), "val", 1)
    assert torch.equal(b["inputs"]["video"], b_off["inputs"]["video"])


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_killed_build_is_redone(tmp_path):
    root = write_synthetic_arrays(tmp_path / "d", {"train": [80]}, {}, face_size=64)
    src = next(root.rglob("video.npy"))
    cache = FaceCache(tmp_path / "cache", 48, False)
    dst = cache.target(src)
    dst.parent.mkdir(parents=True)
    # what a kill during a build leaves: the lock of a dead process and a partial temporary file
    (dst.parent / (dst.name + ".lock")).write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid()}))
    (dst.parent / f".{dst.name}.abc.npy.tmp").write_bytes(b"partial")
    got = face_cache.prepare(cache, [src], progress=False, poll_s=0.01)
    assert got == {src: dst} and np.load(dst).shape == (80, 48, 48, 3)
    assert not (dst.parent / (dst.name + ".lock")).exists()


def test_a_video_locked_by_a_live_process_is_waited_for(tmp_path):
    root = write_synthetic_arrays(tmp_path / "d", {"train": [40, 50]}, {}, face_size=64)
    srcs = sorted(root.rglob("video.npy"))
    cache = FaceCache(tmp_path / "cache", 48, False)
    other = FileLock(cache.target(srcs[0]).with_name(cache.target(srcs[0]).name + ".lock"))
    assert other.try_acquire()  # another rank/task is resizing the first video
    threading.Timer(0.3, other.release).start()
    got = face_cache.prepare(cache, srcs, progress=False, poll_s=0.05)
    assert sorted(got) == srcs and all(np.load(d).shape[1:] == (48, 48, 3) for d in got.values())


def test_unwritable_folder_is_a_clear_error(root128, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FaceCacheError, match=r"--face_cache DIR .* or --face_cache off"):
        batches(options(root128, "--face_cache", str(blocker / "cache")), "val", 1)


def test_an_unwritable_default_folder_falls_back_to_resizing_every_window(root128, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")  # the default folder sits next to the stats cache: here, under a file
    ds, got = batches(options(root128, "--stats_cache", str(blocker / "stats")), "val", 1)
    _, ref = batches(options(root128, "--face_cache", "off"), "val", 1)
    assert all(v.faces is None for v in ds.videos)
    assert torch.equal(got[0]["inputs"]["video"], ref[0]["inputs"]["video"])
    assert "resizing the faces of every window instead" in caplog.text


def test_bad_faces_are_named_after_the_others_are_built(tmp_path):
    root = write_synthetic_arrays(tmp_path / "d", {"train": [40, 50]}, {}, face_size=64)
    srcs = sorted(root.rglob("video.npy"))
    np.save(srcs[0], np.zeros((40, 64, 64, 3), np.float32))
    cache = FaceCache(tmp_path / "cache", 48, False)
    with pytest.raises(FaceCacheError, match=re.escape(str(srcs[0])) + ".*uint8"):
        face_cache.prepare(cache, srcs, progress=False)
    assert cache.target(srcs[1]).exists()



def test_an_unreadable_video_is_left_to_the_dataset_check_that_names_it(tmp_path):
    from bah.train.dataset import DataError

    root = write_synthetic_arrays(tmp_path / "d", LENGTHS, {"vggish": 8}, face_size=64)
    bad = sorted(root.rglob("video.npy"))[0]
    bad.write_bytes(b"not an npy file")
    with pytest.raises(DataError, match=re.escape(str(bad))):
        build_datasets(options(root, "--face_cache", str(tmp_path / "cache")), splits=("train", "val", "test"))
