"""The fast path changes speed, not numbers: each switch against the plain path on the CPU."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bah.models.factory import build_model
from bah.models.ir50 import build_ir50
from bah.train import engine
from bah.train.dataset import EpochShuffle, WindowDataset, collate, split_records, write_synthetic_arrays
from bah.train.distributed import DistInfo, job_cpus
from bah.train.options import parse_options
from bah.train.trainer import make_loader

DIMS = [("vision", 16), ("vggish", 8), ("bert", 12)]


def _batch(b=3, length=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(b, length, d, generator=g) for m, d in DIMS}
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 13:] = False
    mask[2, 5:] = False
    target = torch.randint(0, 2, (b, length), generator=g)
    return {"inputs": inputs, "mask": mask, "target": target, "global_target": target.clone(),
            "video_id": [f"v{i}" for i in range(b)]}


def test_masked_sum_loss_equals_cross_entropy_over_kept_frames():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 30, 2, generator=g, dtype=torch.float64)
    target = torch.randint(0, 2, (4, 30), generator=g)
    mask = torch.rand(4, 30, generator=g) < 0.6
    want = F.cross_entropy(logits[mask], target[mask])
    torch.testing.assert_close(engine.frame_loss(logits, target, mask), want.float(), rtol=0, atol=1e-6)
    full = torch.ones_like(mask)
    torch.testing.assert_close(engine.frame_loss(logits, target, full), F.cross_entropy(logits.flatten(0, 1),
                               target.flatten()).float(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("model", ["jmt", "lfan", "can"])
def test_reading_the_loss_every_step_or_every_50_gives_the_same_training(model):
    batches = [_batch(seed=s) for s in range(5)]
    results = []
    for every in (1, 2, 50):
        torch.manual_seed(0)
        m = build_model(model, DIMS, False, window_length=20)
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        res = engine.train_one_epoch(m, opt, batches, torch.device("cpu"), 0, progress=False, log_every=every)
        results.append((res["loss"], [p.detach().clone() for p in m.parameters()]))
    for loss, params in results[1:]:
        assert loss == pytest.approx(results[0][0], abs=1e-7)
        assert all(torch.equal(a, b) for a, b in zip(params, results[0][1]))


def test_non_finite_loss_still_stops_the_epoch_and_names_the_batch():
    batches = [_batch(seed=s) for s in range(4)]
    batches[2]["inputs"]["vggish"][1, 3, 0] = float("nan")
    m = build_model("can", DIMS, False, window_length=20)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match=r"epoch 7, batch 2: loss is not finite \(videos \['v0', 'v1', 'v2'\]"):
        engine.train_one_epoch(m, opt, batches, torch.device("cpu"), 7, progress=False, log_every=50)


def test_channels_last_backbone_gives_the_same_embeddings_and_keys():
    torch.manual_seed(0)
    net = build_ir50(8).eval()
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        want = net(x)
        keys = list(net.state_dict())
        model = build_model("can", [("video", None), ("vggish", 8)], False, window_length=4,
                            backbone_kwargs={"input_size": 8}).eval()
        model.spatial["visual"].load_state_dict(net.state_dict())
        engine.optimise_backbone(model, channels_last=True)
        vis = model.spatial["visual"]
        assert vis.backbone.input_layer[0].weight.is_contiguous(memory_format=torch.channels_last)
        got = vis(x)
    assert list(vis.state_dict()) == keys
    # float32 through 50 layers, a different summation order: 2e-5 on unit-norm embeddings
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)


def test_compiled_backbone_keeps_parameter_names():
    model = build_model("jmt", [("video", None), ("vggish", 8)], False, window_length=4,
                        backbone_kwargs={"input_size": 8})
    keys = list(model.state_dict())
    engine.optimise_backbone(model, compile=True)  # compiles lazily, at the first call
    assert list(model.state_dict()) == keys
    assert engine.optimise_backbone(build_model("can", DIMS, False, window_length=4)) is not None  # no faces: no-op


def test_amp_dtype_auto_is_bf16_without_scaler_on_cpu_and_fp16_keeps_the_scaler():
    cpu = torch.device("cpu")
    assert engine.amp_dtype_of(cpu, "auto") is torch.bfloat16
    assert engine.make_scaler(cpu, True, "auto") is None
    assert engine.make_scaler(cpu, True, "float16") is not None
    assert engine.make_scaler(cpu, False, "float16") is None
    assert parse_options(["--dataset_path", "x", "--amp_dtype", "auto", "--compat"]).amp_dtype == "float16"
    assert parse_options(["--dataset_path", "x", "--amp_dtype", "auto"]).amp_dtype == "auto"
    # the default: bf16 where supported (measured faster on the H200), the original's fp16 under --compat
    assert parse_options(["--dataset_path", "x"]).amp_dtype == "auto"
    assert parse_options(["--dataset_path", "x", "--compat"]).amp_dtype == "float16"


def test_bf16_autocast_logits_stay_close_to_float32():
    torch.manual_seed(0)
    m = build_model("jmt", DIMS, False, window_length=20).eval()
    b = _batch()
    with torch.no_grad():
        want = m(b["inputs"], mask=b["mask"])["logits"]
        with engine.autocast(torch.device("cpu"), True, "auto"):
            got = m(b["inputs"], mask=b["mask"])["logits"]
    assert got.dtype == torch.float32  # fixed mode returns float32 logits
    scale = max(1.0, float(want.abs().max()))
    # bf16 keeps 8 significant bits (relative step 2**-8 = 0.4%); a few roundings deep: 3e-2 * scale
    torch.testing.assert_close(got, want, rtol=0, atol=3e-2 * scale)


def test_epoch_shuffle_is_a_seeded_permutation_per_epoch():
    s = EpochShuffle(50, seed=3)
    e0 = list(s)
    assert {e for e, _ in e0} == {0} and sorted(i for _, i in e0) == list(range(50)) and list(s) == e0
    s.set_epoch(1)
    e1 = list(s)
    assert {e for e, _ in e1} == {1} and sorted(i for _, i in e1) == list(range(50))
    assert [i for _, i in e1] != [i for _, i in e0]
    again = EpochShuffle(50, seed=3)
    again.set_epoch(1)
    assert list(again) == e1  # a resumed run replays the epoch's order


def test_training_loader_is_built_once_with_persistent_workers_capped_at_the_job_cpus(tmp_path, monkeypatch):
    root = write_synthetic_arrays(tmp_path, {"train": [30, 40], "val": [20], "test": [20]}, dict(DIMS), seed=0)
    ds = WindowDataset(split_records(root, "train"), ["vision", "vggish", "bert"], 8, 4, train=True)
    o = parse_options(["--dataset_path", str(root), "--num_workers", "6"])
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert job_cpus() == 2
    dl = make_loader(ds, 4, True, o, DistInfo(), epoch_seed=5)
    assert dl.num_workers == 2 and dl.persistent_workers and not dl.pin_memory  # pinning only for CUDA
    assert isinstance(dl.sampler, EpochShuffle) and dl.sampler.seed == 5
    o0 = parse_options(["--dataset_path", str(root), "--num_workers", "0"])
    dl0 = make_loader(ds, 4, True, o0, DistInfo(), epoch_seed=5)
    assert dl0.num_workers == 0 and not dl0.persistent_workers
    order = [i for b in dl0 for i in b["video_idx"].tolist()]
    assert len(order) == len(ds)
    rows = [collate([ds[i]])["video_idx"].item() for i in list(dl0.sampler)]
    assert order == rows
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert job_cpus() >= 1


def test_predict_in_inference_mode_matches_a_plain_forward():
    torch.manual_seed(0)
    m = build_model("lfan", DIMS, False, window_length=20)
    b = _batch()
    b.update(video_target=torch.tensor([0, 1, 0]))
    preds = engine.predict(m, [b], torch.device("cpu"), progress=False)
    with torch.no_grad():
        want = m.eval()(b["inputs"], mask=b["mask"])["logits"]
    for i, vid in enumerate(b["video_id"]):
        keep = b["mask"][i].numpy()
        np.testing.assert_array_equal(preds[vid]["logits"], want[i].numpy()[keep])
        assert preds[vid]["g_labels"].tolist() == [int(b["video_target"][i])] * int(keep.sum())


@pytest.mark.parametrize("model", ["jmt", "mt"])
def test_local_attention_equals_full_attention_when_the_band_covers_the_video(model, monkeypatch):
    import bah.models.jmt as jmt

    torch.manual_seed(0)
    m = build_model(model, DIMS, False, window_length=32).eval()
    g = torch.Generator().manual_seed(2)
    inputs = {name: torch.randn(2, 120, d, generator=g) for name, d in DIMS}
    mask = torch.ones(2, 120, dtype=torch.bool)
    mask[1, 70:] = False  # a shorter video padded in the same batch
    with torch.no_grad():
        full = m(inputs, mask=mask)["logits"]
        # blocks of 64 queries, keys within 64 more on either side: every key of a 120-frame video
        monkeypatch.setattr(jmt, "LOCAL_ATTENTION_FROM", 50)
        monkeypatch.setattr(jmt, "LOCAL_ATTENTION_RADIUS", 64)
        chunked = m(inputs, mask=mask)["logits"]
        monkeypatch.setattr(jmt, "LOCAL_ATTENTION_RADIUS", 16)
        local = m(inputs, mask=mask)["logits"]
    torch.testing.assert_close(chunked[mask], full[mask], rtol=0, atol=2e-5)
    assert torch.isfinite(local).all() and not torch.allclose(local[mask], full[mask], atol=1e-3)


def test_compat_jmt_keeps_full_attention_at_any_length(monkeypatch):
    import bah.models.jmt as jmt

    torch.manual_seed(0)
    m = build_model("jmt", [("vision", 16), ("vggish", 8)], True, window_length=40).eval()
    x = {"vision": torch.randn(1, 40, 16), "vggish": torch.randn(1, 40, 8)}
    with torch.no_grad():
        want = m(x)["logits"]
        monkeypatch.setattr(jmt, "LOCAL_ATTENTION_FROM", 8)
        monkeypatch.setattr(jmt, "LOCAL_ATTENTION_RADIUS", 4)
        assert torch.equal(m(x)["logits"], want)


def test_faces_transformed_in_the_workers_are_seeded_per_epoch_and_window(tmp_path):
    from bah.train.augmentation import FaceTransform

    root = write_synthetic_arrays(tmp_path, {"train": [30, 40], "val": [20], "test": [20]}, dict(DIMS),
                                  face_size=12, seed=0)
    recs = split_records(root, "train")
    plain = WindowDataset(recs, ["video", "vggish"], 8, 4, train=True, seed=3)
    ds = WindowDataset(recs, ["video", "vggish"], 8, 4, train=True, seed=3, face_transform=FaceTransform(12, 8))
    a, b, c = collate([ds[(0, 5)], ds[(0, 2)]]), collate([ds[(0, 5)], ds[(0, 2)]]), collate([ds[(1, 5)]])
    assert a["inputs"]["video"].shape == (2, 8, 3, 8, 8) and a["inputs"]["video"].dtype == torch.float32
    assert torch.equal(a["inputs"]["video"], b["inputs"]["video"])  # a resumed epoch replays it
    assert not torch.equal(a["inputs"]["video"][0], c["inputs"]["video"][0])  # another epoch, another crop
    # each window's crop/flip: the transform of its raw uint8 frames with its (seed, epoch, item) generator
    for batch, row, key in ((a, 0, (0, 5)), (a, 1, (0, 2)), (c, 0, (1, 5))):
        raw = torch.from_numpy(np.array(plain[key[1]]["inputs"]["video"]))[None]
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([3, *key]).generate_state(1, np.uint64)[0]) % 2**63)
        torch.testing.assert_close(batch["inputs"]["video"][row], FaceTransform(12, 8)(raw, generator=g)[0],
                                   rtol=0, atol=0)
    moved = engine.to_device(a, torch.device("cpu"), FaceTransform(12, 8))
    assert torch.equal(moved["inputs"]["video"], a["inputs"]["video"])  # not transformed twice
    ev = WindowDataset(recs, ["video"], 8, 4, train=False, face_transform=FaceTransform(12, 8, train=False))
    whole = collate([ev[0], ev[1]])  # whole videos of 30 and 40 frames, padded to 40
    want = FaceTransform(12, 8, train=False)(torch.from_numpy(np.array(ev._array(0, "video")))[None])
    torch.testing.assert_close(whole["inputs"]["video"][0, :30], want[0], rtol=0, atol=0)
    assert whole["mask"][0].sum() == 30 and bool((whole["inputs"]["video"][0, 30:] == -1).all())  # as 0 faces


@pytest.mark.slow
def test_cpu_training_on_faces_with_the_transform_in_two_workers(tmp_path):
    from bah.train.trainer import train

    root = write_synthetic_arrays(tmp_path / "d", {"train": [30, 40, 26], "val": [20, 24], "test": [22]},
                                  {"vggish": 8}, face_size=12, seed=0)
    argv = ["--dataset_path", str(root), "--output_root", str(tmp_path / "runs"), "--exp_id", "w", "--model_name",
            "CAN", "--modality", "video+vggish+EXPR_continuous_label", "--window_length", "8", "--hop_length", "8",
            "--train_batch_size", "2", "--num_workers", "2", "--num_epochs", "2", "--verbose", "False",
            "--save_plot", "False", "--face_resize", "12", "--face_crop", "8", "--device", "cpu"]
    first = train(parse_options(argv))
    again = train(parse_options([*argv[:5], "w2", *argv[6:]]))
    assert [h["train_loss"] for h in first["history"]] == [h["train_loss"] for h in again["history"]]
    assert np.isfinite(first["history"][-1]["train_loss"])


def test_collate_fills_one_buffer_per_batch_and_a_worker_sends_the_same_batch(tmp_path):
    from torch.utils.data import DataLoader

    root = write_synthetic_arrays(tmp_path, {"train": [30, 40], "val": [20, 26], "test": [20]}, dict(DIMS), seed=0)
    ds = WindowDataset(split_records(root, "val"), ["vision", "vggish", "bert"], 8, 4, train=False)
    b = collate([ds[0], ds[1]])  # 20 and 26 frames: the first is padded
    tensors = [*b["inputs"].values(), b["mask"], b["target"], b["global_target"], b["frame_idx"]]
    assert len({t.untyped_storage().data_ptr() for t in tensors}) == 1
    raw = np.load(ds.videos[0].folder / "vggish.npy")
    np.testing.assert_array_equal(b["inputs"]["vggish"][0, :20].numpy(), raw)
    assert (b["inputs"]["vggish"][0, 20:] == 0).all() and b["mask"][0].sum() == 20 and b["mask"][1].all()
    assert b["frame_idx"][0, 20:].eq(-1).all() and b["frame_idx"][1].tolist() == list(range(26))
    via_worker = next(iter(DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate)))
    for k in ("mask", "target", "global_target", "frame_idx", "video_target", "bounds"):
        assert torch.equal(via_worker[k], b[k]), k
    for m in b["inputs"]:
        assert torch.equal(via_worker["inputs"][m], b["inputs"][m]), m


@pytest.mark.parametrize("model", ["jmt", "lfan", "can"])
def test_an_unpadded_batch_runs_without_its_mask_to_the_same_result(model):
    def batches(flag):
        out = []
        for s in range(3):
            b = _batch(seed=s)
            b["mask"][:] = True
            if flag:
                b["full"] = True
            out.append(b)
        return out

    res = []
    for flag in (False, True):
        torch.manual_seed(0)
        m = build_model(model, DIMS, False, window_length=20)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        r = engine.train_one_epoch(m, opt, batches(flag), torch.device("cpu"), 0, progress=False)
        res.append((r["loss"], [p.detach().clone() for p in m.parameters()]))
    # the masked BatchNorm statistics of an all-True mask equal the plain ones up to float32 rounding
    assert res[0][0] == pytest.approx(res[1][0], abs=1e-6)
    for a, b in zip(res[0][1], res[1][1]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert collate_full_flag()


def collate_full_flag():
    g = np.zeros((4, 2), np.float32)
    item = {"inputs": {"vggish": g}, "target": np.zeros(4, np.int64), "mask": np.ones(4, bool),
            "global_target": np.zeros(4, np.int64), "video_target": 0, "video_idx": 0,
            "frame_idx": np.arange(4), "video_id": "v", "start": 0, "end": 4}
    short = {**item, "inputs": {"vggish": g[:3]}, "target": item["target"][:3], "mask": item["mask"][:3],
             "global_target": item["global_target"][:3], "frame_idx": np.arange(3), "end": 3}
    return collate([item, item])["full"] is True and collate([item, short])["full"] is False


def test_feature_zscore_is_the_originals_float32_normalize_to_the_bit():
    """The original z-scored vggish/bert with torchvision's Normalize on float32 tensors (the
    float64 statistics rounded to float32); ours gives the same bits under --compat."""
    from torchvision import transforms

    from bah.train.normalization import Stats, normalise

    rng = np.random.RandomState(0)
    x = (rng.randn(300, 64) * 3 + 1).astype(np.float32)
    s = Stats(rng.randn(64) * 0.1, rng.rand(64) + 0.5, 300)
    want = transforms.Normalize(s.mean.reshape(1, -1), s.std.reshape(1, -1))(transforms.ToTensor()(x))[0].numpy()
    got = normalise(x, s, compat=True)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    s.std[3] = 0.0  # a constant dimension: the original divided by zero; by default the std is floored
    assert np.isfinite(normalise(x, s, compat=False)).all()
    with np.errstate(divide="ignore", invalid="ignore"):
        assert not np.isfinite(normalise(x, s, compat=True)[:, 3]).any()


def test_entry_points_put_large_cpu_tensors_on_huge_pages(monkeypatch):
    import os

    from bah.cli import main as bah_main
    from bah.train.cli import main as main_py

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    assert bah_main(["--help"]) == 0 and os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")  # the user's choice stands
    with pytest.raises(SystemExit):
        main_py(["--help"])
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"


def test_workers_forked_after_the_face_transform_ran_in_this_process_do_not_hang(tmp_path):
    """OpenCV's thread pool and fork: the CPU face transform uses OpenCV; a loader whose workers
    are forked afterwards (bench/loader.py, a 0-worker evaluation then workers) must still run.
    In a subprocess with a time limit, so that a hang fails instead of stalling the suite."""
    import subprocess
    import sys
    from pathlib import Path

    root = write_synthetic_arrays(tmp_path / "d", {"train": [90, 80], "val": [40], "test": [40]}, {"vggish": 8},
                                  face_size=48)
    code = f"""
import torch
from bah.train.augmentation import FaceTransform
from bah.train.distributed import DistInfo
from bah.train.options import parse_options
from bah.train.trainer import build_datasets, make_loader
FaceTransform(48, 40)(torch.randint(0, 256, (2, 700, 48, 48, 3), dtype=torch.uint8))  # OpenCV in this process
o = parse_options(["--dataset_path", {str(root)!r}, "--modality", "video+vggish+EXPR_continuous_label",
                   "--window_length", "32", "--hop_length", "16", "--num_workers", "2", "--verbose", "False"])
ds = build_datasets(o, splits=("train",), faces_in_workers=True)["train"]
n = sum(len(b["video_id"]) for b in make_loader(ds, 2, True, o, DistInfo(), epoch_seed=0))
assert n == len(ds), (n, len(ds))
print("ok", n)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]


@pytest.mark.parametrize("model", ["jmt", "mt", "lfan", "can"])
def test_evaluation_in_batches_of_videos_gives_each_video_its_own_logits(model, tmp_path):
    """--eval_batch_size > 1 pads the videos of a batch to the longest and masks the padding:
    every frame's logits must stay what the video alone gives (BatchNorm on running statistics,
    causal TCNs, key-padding masks in attention, LFAN's fixed windows per video)."""
    from torch.utils.data import DataLoader

    from bah.models.factory import fixed_length_of

    root = write_synthetic_arrays(tmp_path / "d", {"train": [30], "val": [40, 17, 33, 61, 25], "test": [20]},
                                  {"vggish": 8, "bert": 12}, seed=1)
    recs = split_records(root, "val")
    ds = WindowDataset(recs, ["vggish", "bert"], 24, 12, train=False)
    torch.manual_seed(0)
    m = build_model(model, [("vggish", 8), ("bert", 12)], False, window_length=24).eval()

    def logits(batch):
        return engine.predict(m, DataLoader(ds, batch_size=batch, collate_fn=collate), torch.device("cpu"),
                              fixed_length=fixed_length_of(m), hop_length=12, progress=False)

    one, three = logits(1), logits(3)
    assert sorted(one) == sorted(three) == sorted(r.video_id for r in recs)
    for vid in one:
        assert one[vid]["logits"].shape == (next(r.length for r in recs if r.video_id == vid), 2)
        np.testing.assert_allclose(three[vid]["logits"], one[vid]["logits"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_feature_value_is_still_named_with_its_file_and_frames(tmp_path, bad):
    from bah.train.dataset import DataError

    root = write_synthetic_arrays(tmp_path / "d", {"train": [40], "val": [20], "test": [20]}, {"bert": 12}, seed=3)
    rec = split_records(root, "train")[0]
    x = np.load(rec.folder / "bert.npy")
    x[25, 4] = bad
    np.save(rec.folder / "bert.npy", x)
    ds = WindowDataset([rec], ["bert"], 16, 8, train=False)
    with pytest.raises(DataError, match=r"NaN or inf in .*bert\.npy frames \[0, 40\)"):
        ds[0]
    big = WindowDataset([rec], ["bert"], 16, 8, train=False)
    np.save(rec.folder / "bert.npy", np.full((40, 12), 3e37, np.float32))  # finite, but the sum overflows
    assert np.isfinite(big[0]["inputs"]["bert"]).all()
