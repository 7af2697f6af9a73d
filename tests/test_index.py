"""``bah index``: dataset_info.pkl as the original trainer reads it, the JSON index, refusals;
plus the compat scripts (and ``bah labels`` end to end) through subprocesses on a fake tree."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bah.core.config import ConfigError
from bah.core.files import write_jsonl
from bah.stages.index import (
    IndexConfig,
    IndexValidationError,
    build_index,
    load_dataset_info,
    load_index,
    merge_part_infos,
    write_index,
)
from bah.stages.labels import LABEL_FILE
from bah.core.layout import INDEX_JSON, dataset_info_path, manifest_path, stage_dir, video_dir
from bah.stages.manifest import VideoRecord
from bah.core.status import StageStatus

REPO = Path(__file__).resolve().parents[1]

VIDS = {
    "train": [("Videos/101/Visite_1/101_Question_1_2024-01-01_10-00-00_Video.mp4", 1, 12),
              ("Videos/101/Visite_1/101 Question 2 2024-01-01 10-05-00 Video-DESKTOP-NQ55E0P.mp4", 0, 9),
              ("Videos/102/Visite_1/102_Question_3_2024-01-02_10-00-00_Video.mp4", 1, 7)],
    "val": [("Videos/201/Visite_1/201_Question_1_2024-02-01_10-00-00_Video.mp4", 0, 10)],
    "test": [("Videos/301/Visite_1/301_Question_5_2024-03-01_10-00-00_Video.mp4", 1, 11),
             ("Videos/302/Visite_1/302_Question_7_2024-03-02_10-00-00_Video.mp4", 0, 8)],
}


def _records(errors=()):
    recs = []
    for split, rows in VIDS.items():
        for vid, label, n in rows:
            pid = vid.split("/")[1]
            q = int(vid.split("Question")[1].strip(" _")[0])
            err = "cannot decode" if vid in errors else None
            recs.append(VideoRecord(video_id=vid, split=split, participant=pid, question=q, label=label,
                                    transcript=f"well, I think, {pid}", path=f"/data/{vid}",
                                    n_frames=None if err else n, avg_fps=25.0, error=err))
    return recs


def _make_tree(out: Path, errors=()):
    recs = _records(errors)
    write_jsonl(manifest_path(out), [r.to_dict() for r in recs])
    rng = np.random.default_rng(0)
    for r in recs:
        if r.error:
            continue
        d = video_dir(out, r.video_id)
        d.mkdir(parents=True)
        n = r.n_frames
        np.save(d / "video.npy", rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8))
        np.save(d / "vggish.npy", rng.standard_normal((n, 128)).astype(np.float32))
        lab = np.zeros(n, np.float32)
        lab[: n // 3] = r.label
        np.save(d / LABEL_FILE, lab)
    return recs


@pytest.fixture
def tree(tmp_path):
    out = tmp_path / "out"
    recs = _make_tree(out)
    return out, recs


def test_dataset_info_has_the_structure_the_original_trainer_reads(tree):
    out, recs = tree
    write_index(out, build_index(out, recs, progress=False))
    with open(dataset_info_path(out), "rb") as fh:
        info = pickle.load(fh)
    assert list(info) == ["train", "val", "test"]
    for split, rows in VIDS.items():
        d = info[split]
        assert d["trial"] == [vid for vid, _, _ in rows]  # manifest (= split file) order
        assert d["length"] == [n for _, _, n in rows]
        assert all(type(x) is int for x in d["length"])
        assert d["data_folder"] == "compacted_48"
        assert d["subject_no"] == list(range(len(rows)))  # the original's running counter
        assert d["participant"] == [vid.split("/")[1] for vid, _, _ in rows]
        assert d["trial_no"] == [1] * len(rows)
        assert d["partition"] == d["pseudo_partition"] == [split] * len(rows)
        lines = d["trial_list"]["EXPR"][split]
        assert [ln.split(",", 2)[:2] for ln in lines] == [[vid, str(lab)] for vid, lab, _ in rows]
        # what the trainer does: <features>/<data_folder>/<trial>/*.npy, windows over `length`
        for vid, n in zip(d["trial"], d["length"]):
            folder = out / "features" / d["data_folder"] / vid
            for name in ("video", "vggish", LABEL_FILE[:-4]):
                assert np.load(folder / f"{name}.npy", mmap_mode="r").shape[0] == n
    assert load_dataset_info(out, splits=["train", "val", "test"])["val"]["trial"] == info["val"]["trial"]


def test_json_index_readable(tree):
    out, recs = tree
    write_index(out, build_index(out, recs, progress=False))
    raw = json.loads((out / INDEX_JSON).read_text(encoding="utf-8"))
    index = load_index(out)
    assert raw == index
    assert index["splits"]["train"] == {"videos": 3, "frames": 28, "participants": 2, "positives": 2}
    v = {x["video_id"]: x for x in index["videos"]}
    first = v[VIDS["train"][0][0]]
    assert first["participant"] == "101" and first["question"] == 1 and first["label"] == 1
    assert first["n_frames"] == 12
    assert first["modalities"]["video"] == {"shape": [12, 8, 8, 3], "dtype": "uint8"}
    assert first["modalities"]["vggish"] == {"shape": [12, 128], "dtype": "float32"}
    assert first["ah_fraction"] == pytest.approx(4 / 12)
    assert v[VIDS["val"][0][0]]["ah_fraction"] == 0.0


def test_length_disagreement_refuses_and_names_every_video(tree):
    out, recs = tree
    bad1, bad2 = VIDS["train"][1][0], VIDS["test"][0][0]
    np.save(video_dir(out, bad1) / "vggish.npy", np.zeros((8, 128), np.float32))
    np.save(video_dir(out, bad2) / "bert.npy", np.zeros((12, 768), np.float32))
    result = build_index(out, recs, progress=False)
    with pytest.raises(IndexValidationError) as exc:
        write_index(out, result)
    msg = str(exc.value)
    assert bad1 in msg and bad2 in msg and "vggish.npy" in msg and "bert.npy" in msg and "N=9" in msg
    assert {vid for vid, _ in exc.value.problems} == {bad1, bad2}
    assert not dataset_info_path(out).exists() and not (out / INDEX_JSON).exists()


def test_refusal_keeps_a_previous_index(tree):
    out, recs = tree
    write_index(out, build_index(out, recs, progress=False))
    before = dataset_info_path(out).read_bytes()
    np.save(video_dir(out, VIDS["val"][0][0]) / LABEL_FILE, np.zeros(3, np.float32))
    with pytest.raises(IndexValidationError):
        write_index(out, build_index(out, recs, progress=False))
    assert dataset_info_path(out).read_bytes() == before


def test_manifest_error_rows_and_stage_failures_excluded(tmp_path):
    out = tmp_path / "out"
    err_vid = VIDS["train"][2][0]
    recs = _make_tree(out, errors={err_vid})
    failed = VIDS["test"][1][0]
    st = StageStatus(out, "features", "h")
    st.mark_failed(failed, "vggish: audio track unreadable")
    redone = VIDS["test"][0][0]
    st.mark_failed(redone, "transient")
    st.mark_done(redone)  # redone since: no longer excluded
    result = build_index(out, recs, progress=False)
    write_index(out, result)
    info = load_dataset_info(out)
    assert err_vid not in info["train"]["trial"] and failed not in info["test"]["trial"]
    assert info["test"]["trial"] == [redone]
    reasons = {r["video_id"]: r["reason"] for r in load_index(out)["excluded"]}
    assert reasons[err_vid].startswith("manifest") and "features: vggish" in reasons[failed]


def test_required_modality_and_empty_folder(tree):
    out, recs = tree
    res = build_index(out, recs, IndexConfig(require=("bert",)), progress=False)
    assert len({vid for vid, _ in res.problems}) == len(recs)
    assert all("bert.npy missing" in m for _, m in res.problems)
    for f in video_dir(out, VIDS["val"][0][0]).glob("*.npy"):
        f.unlink()
    res = build_index(out, recs, progress=False)
    assert [vid for vid, _ in res.problems] == [VIDS["val"][0][0]]


def test_empty_split_is_an_error_unless_allowed(tmp_path):
    out = tmp_path / "out"
    recs = [r for r in _make_tree(out) if r.split != "val"]
    with pytest.raises(ConfigError, match="val"):
        build_index(out, recs, progress=False)
    write_index(out, build_index(out, recs, IndexConfig(allow_empty_splits=True), progress=False))
    assert load_dataset_info(out)["val"]["trial"] == []


def test_check_finite_scans_arrays(tree):
    out, recs = tree
    vid = VIDS["train"][0][0]
    arr = np.zeros((12, 128), np.float32)
    arr[3, 4] = np.nan
    np.save(video_dir(out, vid) / "vggish.npy", arr)
    assert not build_index(out, recs, progress=False).problems  # headers only by default
    probs = build_index(out, recs, IndexConfig(check_finite=True), progress=False).problems
    assert probs == [(vid, "vggish.npy has 1 NaN/inf values")]


def test_load_dataset_info_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="bah index"):
        load_dataset_info(tmp_path)
    with open(dataset_info_path(tmp_path), "wb") as fh:
        pickle.dump({"train": {"trial": ["a"], "length": [1, 2], "data_folder": "compacted_48"}}, fh)
    with pytest.raises(ValueError, match="1 trials but 2 lengths"):
        load_dataset_info(tmp_path)
    with pytest.raises(ValueError, match="no split 'val'"):
        load_dataset_info(tmp_path, splits=["val"])


def _original_parts(features: Path, out_lengths=None):
    """Per-part pickles the way the original feature extraction wrote them (§5.9)."""
    for split, rows in VIDS.items():
        parts = np.array_split(np.arange(len(rows)), 2)
        for p, idx in enumerate(parts):
            sel = [rows[i] for i in idx]
            d = {"trial_list": {"EXPR": {split: [f"{v},{lab},x" for v, lab, _ in rows]}},
                 "trial": [v for v, _, _ in sel], "subject_no": [int(i) for i in idx], "trial_no": [1] * len(sel),
                 "length": [n for _, _, n in sel], "partition": [split] * len(sel),
                 "pseudo_partition": [split] * len(sel), "data_folder": "compacted_48"}
            with open(features / f"dataset_info_BAH_DB_{split}_2_{p}.pkl", "wb") as fh:
                pickle.dump(d, fh)


def test_merge_original_parts(tmp_path):
    features = tmp_path / "features"
    features.mkdir()
    _original_parts(features)
    info = merge_part_infos(features)
    assert info["train"]["trial"] == [v for v, _, _ in VIDS["train"]]
    assert info["train"]["subject_no"] == [0, 1, 2] and info["test"]["length"] == [11, 8]
    (features / "dataset_info_BAH_DB_val_2_1.pkl").unlink()
    with pytest.raises(FileNotFoundError, match="dataset_info_BAH_DB_val_2_1.pkl"):
        merge_part_infos(features)


# ---------------------------------------------------------------------------------------------
# Compat scripts and the commands, as users run them


def _run(args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("BAH_OUT", None)
    env.pop("BAH_DATA_ROOT", None)
    return subprocess.run([sys.executable, *args], cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("script", ["set_frame_labels.py", "post_feature_extract.py"])
def test_compat_scripts_help(script):
    res = _run([str(REPO / script), "--help"])
    assert res.returncode == 0, res.stderr
    assert "--out" in res.stdout and "--data-root" in res.stdout


def test_compat_scripts_on_fake_tree(tmp_path):
    out = tmp_path / "out"
    data = tmp_path / "BAH"
    data.mkdir()
    recs = _make_tree(out)
    # annotation for all but the test split (a private test set): exact, resampled (+2 frames)
    lines = []
    for r in recs:
        if r.split == "test":
            continue
        m = r.n_frames + (2 if r.split == "val" else 0)
        lines.append(f"'{r.video_id}':\n  global_ah: {r.label}\n  frame_annotation:")
        lines += [f"  - ['{r.video_id}/frame-{i}.jpg', {int(i % 2 == 0)}]" for i in range(m)]
    (data / "video_annotation_transcript.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    res = _run([str(REPO / "set_frame_labels.py"), "--ds", "BAH_DB", "--data-root", str(data), "--out", str(out),
                "--no-progress"], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 resampled" in res.stdout
    first = recs[0]
    lab = np.load(video_dir(out, first.video_id) / LABEL_FILE)
    np.testing.assert_array_equal(lab, (np.arange(first.n_frames) % 2 == 0).astype(np.float32))
    test_rec = [r for r in recs if r.split == "test"][0]
    assert (np.load(video_dir(out, test_rec.video_id) / LABEL_FILE) == test_rec.label).all()  # video label
    assert (stage_dir(out, "labels") / "config.yaml").is_file()
    assert (stage_dir(out, "labels") / "labels.jsonl").is_file()

    res = _run([str(REPO / "post_feature_extract.py"), "--out", str(out), "--no-progress"], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    info = load_dataset_info(out)
    assert info["train"]["length"] == [n for _, _, n in VIDS["train"]]
    assert load_index(out)["videos"][0]["ah_fraction"] == pytest.approx(lab.mean())

    # a disagreeing array: the command refuses, names the video, exits non-zero
    bad = recs[1].video_id
    np.save(video_dir(out, bad) / "bert.npy", np.zeros((2, 4), np.float32))
    res = _run(["-m", "bah.cli", "index", "--out", str(out), "--no-progress"], cwd=tmp_path)
    assert res.returncode == 1 and bad in res.stdout and "refusing" in res.stdout


def test_post_feature_extract_from_original_parts(tmp_path):
    root = tmp_path / "BAH_DB"
    features = root / "features"
    features.mkdir(parents=True)
    _original_parts(features)
    for rows in VIDS.values():
        for vid, label, n in rows:
            d = features / "compacted_48" / vid
            d.mkdir(parents=True)
            np.save(d / LABEL_FILE, np.full(n, label, np.int64))
    res = _run([str(REPO / "post_feature_extract.py"), "--ds", "BAH_DB", "--from-parts", str(features),
                "--out", str(root)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert load_dataset_info(root)["val"]["trial"] == [VIDS["val"][0][0]]
    vid = VIDS["train"][0][0]
    np.save(features / "compacted_48" / vid / "vggish.npy", np.zeros((3, 128)))
    res = _run([str(REPO / "post_feature_extract.py"), "--from-parts", str(features), "--out", str(root)])
    assert res.returncode == 1 and vid in res.stdout


def test_split_files_list_exactly_the_indexed_videos(tmp_path):
    from bah.data import read_class_ids, read_video_split

    out = tmp_path / "out"
    err_vid = VIDS["train"][0][0]
    recs = _make_tree(out, errors={err_vid})
    write_index(out, build_index(out, recs, progress=False), split_files=True)
    entries = read_video_split(out / "split" / "train.txt")
    assert [e.video_id for e in entries] == [v for v, _, _ in VIDS["train"][1:]]
    assert [e.label for e in entries] == [0, 1] and entries[0].transcript == "well, I think, 101"
    assert read_class_ids(out / "split" / "class_id.yaml") == {"With A-H": 1, "No A-H": 0}
    assert (out / "split" / "class_id.yaml").read_bytes() == b"With A-H: 1\nNo A-H: 0"


@pytest.mark.slow
def test_synthetic_release_end_to_end(synth_root, tmp_path):
    """manifest -> labels (annotation YAML and split-frames agree) -> index on the synthetic release."""
    from bah.data import Release
    from bah.stages.labels import LABEL_SOURCES, LabelConfig, label_videos
    from bah.stages.manifest import build_manifest

    out = tmp_path / "out"
    recs = build_manifest(synth_root, out)
    ids = [r.video_id for r in recs]
    ann = Release(synth_root).annotations(ids)
    by_source = {}
    for name in ("annotation", "split_frames"):
        cfg = LabelConfig(source=name)
        rep = label_videos(out, recs, LABEL_SOURCES.create(name, cfg, synth_root, ids), cfg, progress=False)
        assert not rep.failed and len(rep.written) == len(recs)
        by_source[name] = {vid: np.load(video_dir(out, vid) / LABEL_FILE) for vid in ids}
    for r in recs:
        arr = by_source["annotation"][r.video_id]
        assert arr.dtype == np.float32 and arr.shape == (r.n_frames,)
        np.testing.assert_array_equal(arr, by_source["split_frames"][r.video_id])
        np.testing.assert_array_equal(arr, ann[r.video_id].frame_labels.astype(np.float32))
    write_index(out, build_index(out, recs, IndexConfig(require=("EXPR_continuous_label",)), progress=False))
    info = load_dataset_info(out)
    assert sum(len(info[s]["trial"]) for s in info) == len(recs)
    assert {s: info[s]["length"] for s in info} == {
        s: [r.n_frames for r in recs if r.split == s] for s in ("train", "val", "test")}
    pos = {v["video_id"]: v["ah_fraction"] for v in load_index(out)["videos"]}
    assert all((pos[r.video_id] > 0) == (ann[r.video_id].global_label == 1) for r in recs)


def test_real_split_ids_round_trip(real_splits_dir, tmp_path):
    """The published v2 split files (ids with spaces, -DESKTOP- suffixes, commas in transcripts)."""
    from bah.data import participant_of, question_of, read_video_split

    out = tmp_path / "out"
    recs = []
    for split in ("train", "val", "test"):
        for i, e in enumerate(read_video_split(real_splits_dir / f"{split}.txt")):
            n = 5 + i % 7
            recs.append(VideoRecord(video_id=e.video_id, split=split, participant=participant_of(e.video_id),
                                    question=question_of(e.video_id), label=e.label, transcript=e.transcript,
                                    path=f"/data/{e.video_id}", n_frames=n))
            d = video_dir(out, e.video_id)
            d.mkdir(parents=True)
            np.save(d / LABEL_FILE, np.full(n, e.label, np.float32))
    write_index(out, build_index(out, recs, progress=False), split_files=True)
    info = load_dataset_info(out)
    assert {s: len(info[s]["trial"]) for s in info} == {"train": 616, "val": 110, "test": 392}
    assert sum(" " in t for s in info for t in info[s]["trial"]) > 0
    assert {s: len(set(info[s]["participant"])) for s in info} == {"train": 143, "val": 25, "test": 56}
    for s in info:  # the written split files are the published ones, entry for entry
        ours = read_video_split(out / "split" / f"{s}.txt")
        theirs = read_video_split(real_splits_dir / f"{s}.txt")
        assert [(e.video_id, e.label) for e in ours] == [(e.video_id, e.label) for e in theirs]
        assert [" ".join(e.transcript.split()) for e in ours] == [" ".join(e.transcript.split()) for e in theirs]
    idx = load_index(out)
    assert idx["splits"]["train"]["positives"] == 340 and idx["splits"]["test"]["positives"] == 239


def test_warnings_for_missing_modality_and_int_labels(tree):
    out, recs = tree
    v1, v2 = VIDS["train"][0][0], VIDS["train"][1][0]
    (video_dir(out, v1) / "vggish.npy").unlink()
    np.save(video_dir(out, v2) / LABEL_FILE, np.zeros(9, np.int64))
    res = build_index(out, recs, progress=False)
    assert not res.problems
    warned = {(w["video_id"], w["warning"].split(" ")[0]) for w in res.index["warnings"]}
    assert warned == {(v1, "lacks"), (v2, "EXPR_continuous_label.npy")}


def test_label_origin_recorded(tree):
    from bah.stages.labels import LABEL_SOURCES, LabelConfig, label_videos

    out, recs = tree
    cfg = LabelConfig(source="video")
    label_videos(out, recs[:1], LABEL_SOURCES.create("video", cfg, None), cfg, progress=False)
    origins = {v["video_id"]: v["label_origin"] for v in build_index(out, recs, progress=False).index["videos"]}
    assert origins[recs[0].video_id] == "video" and origins[recs[1].video_id] is None


def test_truncated_or_empty_arrays_are_problems(tree):
    out, recs = tree
    v1, v2 = VIDS["train"][0][0], VIDS["val"][0][0]
    path = video_dir(out, v1) / "vggish.npy"
    path.write_bytes(path.read_bytes()[:-100])
    np.save(video_dir(out, v2) / "bert.npy", np.zeros((0, 768), np.float32))
    probs = dict(build_index(out, recs, progress=False).problems)
    assert "truncated" in probs[v1] and "(0, 768)" in probs[v2]
