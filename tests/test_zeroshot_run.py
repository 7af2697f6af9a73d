"""bah zeroshot end to end on a tiny release: frame sampling, cache, frame modes, metrics, tiny HF models."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bah.cli import main
from bah.data import Release, read_transcription
from bah.apps.zeroshot.answer import create_parser
from bah.apps.zeroshot.backend import FakeBackend
from bah.apps.zeroshot.cache import ResponseCache
from bah.apps.zeroshot.engine import constant_references, run_zeroshot, slice_transcript, window_spans
from bah.apps.zeroshot.frames import CompatSampler, FixedSampler, SampleError, VideoFileSource
from bah.apps.zeroshot.prompt import load_prompts
from bah.apps.zeroshot.settings import ZeroShotConfig

FPS = 10


def write_video(path: Path, n: int, container: str = "mp4", size=(48, 32)):
    from bah.core.media import write_video as encode

    def frames():
        for i in range(n):
            img = np.full((size[1], size[0], 3), (i * 7) % 256, dtype=np.uint8)
            img[:, : (i % size[0]) + 1, 1] = 200  # a moving bar so frames differ
            yield img

    encode(path, frames(), FPS, codec="mpeg4", fmt=container)

# (pid, question, label, n_frames, transcript, positive frame range)
VIDEOS = [
    ("90001", 1, 1, 60, "Well maybe, I am not sure.", (20, 40)),
    ("90001", 2, 0, 50, "I walk the dog every morning.", None),
    ("90002", 1, 1, 60, "I want to stop but I guess not now.", (0, 30)),
    ("90002", 2, 0, 40, "", None),  # no transcript anywhere: text prompts must skip it
]


def vid_of(pid, q):
    return f"Videos/{pid}/Visite_1/{pid}_Question_{q}_2024-01-01_10-00-00_Video.mp4"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("zs") / "BAH"
    lines, flines = [], []
    for pid, q, label, n, text, pos in VIDEOS:
        vid = vid_of(pid, q)
        write_video(root / vid, n)
        lines.append(f"{vid},{label},{text}")
        lab = np.zeros(n, dtype=int)
        if pos:
            lab[pos[0]:pos[1]] = 1
        flines += [f"{vid}/frame-{i}.jpg,{lab[i]}" for i in range(n)]
        if text:
            tdir = root / "transcription" / vid
            tdir.mkdir(parents=True)
            half = len(text) // 2
            tdir.joinpath(Path(vid).stem + ".yml").write_text(
                f"text: ' {text}'\nchunks:\n"
                f"- {{text: ' {text[:half]}', timestamp: !!python/tuple [0.0, 2.0]}}\n"
                f"- {{text: '{text[half:]}', timestamp: !!python/tuple [2.0, 5.0]}}\n")
    (root / "split").mkdir()
    (root / "split" / "test.txt").write_text("\n".join(lines) + "\n")
    (root / "split-frames").mkdir()
    (root / "split-frames" / "test.txt").write_text("\n".join(flines) + "\n")
    (root / "class_id.yaml").write_text("With A-H: 1\nNo A-H: 0\n")
    return root


def run(release, tmp_path, backend=None, cache=None, **kw):
    cfg = ZeroShotConfig(**{"backend": "fake", "prompt": "td1", **kw})
    backend = backend or FakeBackend()
    cache = cache if cache is not None else ResponseCache(tmp_path / "cache.jsonl")
    res = run_zeroshot(cfg, backend, Release(release), load_prompts(), create_parser(cfg.parser, cfg.unparsed),
                       tmp_path, tmp_path / "run", cache, progress=False)
    return res, backend


# ----------------------------------------------------------------------------- frame sampler
def test_samplers_on_a_normal_clip(release):
    src = VideoFileSource(release / vid_of("90001", 1))
    frames, idx = CompatSampler(8, 224).sample(src)
    assert len(frames) == 8 and frames[0].shape == (224, 224, 3)
    assert idx == tuple(np.linspace(0, 59, 8, dtype=int))
    frames, idx = FixedSampler(8, 64).sample(src)
    assert len(frames) == 8 and frames[0].shape == (64, 96, 3)  # aspect ratio kept, shorter side 64
    assert list(idx) == sorted(idx) and idx[0] < 8 and idx[-1] > 50


def test_zero_frame_metadata_breaks_compat_not_fixed(tmp_path):
    path = tmp_path / "v.mkv"  # Matroska stores no frame count: the container reports 0
    write_video(path, 30, container="matroska")
    src = VideoFileSource(path)
    assert src.container_frames() == 0
    with pytest.raises(SampleError, match=r"kept 1 of 8 frames \(the container reports 0"):
        CompatSampler(8).sample(src)
    frames, idx = FixedSampler(8).sample(src)
    assert len(frames) == 8 and len(set(idx)) == 8


class OverstatedSource(VideoFileSource):
    def container_frames(self):
        return 500  # metadata claims far more frames than the file holds


def test_overstated_metadata_breaks_compat_not_fixed(release):
    src = OverstatedSource(release / vid_of("90001", 2))
    with pytest.raises(SampleError, match="compat sampler kept"):
        CompatSampler(8).sample(src)
    assert len(FixedSampler(8).sample(src)[0]) == 8


def test_clip_shorter_than_n_frames(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, 5)
    src = VideoFileSource(path)
    with pytest.raises(SampleError):
        CompatSampler(8).sample(src)
    frames, idx = FixedSampler(8).sample(src)
    assert len(frames) == 8 and set(idx) == set(range(5))


def test_window_span_sampling_stays_inside(release):
    src = VideoFileSource(release / vid_of("90001", 1))
    _, idx = FixedSampler(4).sample(src, (20, 40))
    assert all(20 <= i < 40 for i in idx) and len(set(idx)) == 4


# ----------------------------------------------------------------------------- windows, transcripts
def test_window_spans_cover_every_frame():
    spans = window_spans(100, 10, 4.0, 2.0)
    assert spans[0] == (0, 40) and spans[-1][1] == 100
    covered = np.zeros(100, bool)
    for a, b in spans:
        covered[a:b] = True
    assert covered.all()
    assert window_spans(30, 10, 4.0, 2.0) == [(0, 30)]
    assert window_spans(0, 10, 4.0, 2.0) == []


def test_transcript_slicing_picks_overlapping_chunks(release):
    tr = read_transcription(release / "transcription" / vid_of("90001", 1) / (Path(vid_of("90001", 1)).stem + ".yml"))
    first, second = tr.chunks[0].text.strip(), tr.chunks[1].text.strip()
    assert slice_transcript(tr, 0.0, 1.5) == first
    assert slice_transcript(tr, 2.5, 4.0) == second
    assert slice_transcript(tr, 1.0, 3.0).startswith(first) and slice_transcript(tr, 1.0, 3.0).endswith(second)
    assert slice_transcript(tr, 6.0, 8.0) == ""


# ----------------------------------------------------------------------------- pipeline with the fake
def test_video_level_outputs_cache_and_skips(release, tmp_path):
    res, be = run(release, tmp_path)
    assert be.calls == 3
    assert [s["video_id"] for s in res.skipped] == [vid_of("90002", 2)]
    assert "no transcript" in res.skipped[0]["reason"]
    v = res.metrics["video"]
    assert v["n"] == 3 and v["avgf1"] == 1.0  # the fake's hedge rule matches these transcripts
    assert isinstance(v["ap"], float) and isinstance(v["ap_legacy"], float)
    assert res.metrics["counts"]["unparsed"] == 0
    rows = list(csv.DictReader(open(tmp_path / "run" / "predictions.csv")))
    assert [r["video_id"] for r in rows] == [vid_of(p, q) for p, q, *_ in VIDEOS[:3]]
    resp = [json.loads(l) for l in open(tmp_path / "run" / "responses.jsonl")]
    assert all(r["prompt_hash"] and r["text"] in ("Ambivalent", "Non-Ambivalent") for r in resp)
    m = yaml.safe_load(open(tmp_path / "run" / "metrics.yml"))
    assert m["references"]["always_1"]["avgf1"] == pytest.approx(0.4)
    # rerun: every answer comes from the cache, zero model calls
    res2, be2 = run(release, tmp_path)
    assert be2.calls == 0 and res2.cache_hits == 3 and res2.metrics["video"] == v


def test_interrupted_run_resumes_from_the_cache(release, tmp_path):
    class Crashing(FakeBackend):
        def predict(self, item):
            if self.calls == 1:
                raise KeyboardInterrupt
            return super().predict(item)

    with pytest.raises(KeyboardInterrupt):
        run(release, tmp_path, backend=Crashing())
    assert not (tmp_path / "run" / "metrics.yml").exists()
    _, be = run(release, tmp_path)
    assert be.calls == 2  # the answer received before the crash is not asked again


def test_no_scores_means_ap_na_not_zero(release, tmp_path):
    res, _ = run(release, tmp_path, backend=FakeBackend(scores=False))
    assert res.metrics["video"]["ap"] == "n/a" and res.metrics["video"]["ap_legacy"] == "n/a"


def test_unparsed_answers_are_counted_and_abstain(release, tmp_path):
    fake = FakeBackend(text_template="Answer: **{answer}**.")
    res, _ = run(release, tmp_path, backend=fake, parser="fixed", prompt="td2")
    assert res.metrics["counts"]["unparsed"] == 0 and res.metrics["video"]["avgf1"] == 1.0
    # the original's exact-match rule reads none of them, and calls all three A/H
    res, _ = run(release, tmp_path, backend=fake, parser="compat-videollava", prompt="td2")
    assert res.metrics["counts"]["unparsed"] == 3 and res.metrics["video"]["confusion_counts"] == [[0, 1], [0, 2]]
    res, _ = run(release, tmp_path, backend=FakeBackend(text_template="no idea"), parser="fixed", unparsed="abstain",
                 prompt="td2")
    assert res.metrics["counts"]["unparsed"] == 3 and res.metrics["counts"]["abstained"] == 3
    assert res.metrics["video"].startswith("n/a")


def test_frame_broadcast_copies_the_video_answer(release, tmp_path):
    res, _ = run(release, tmp_path, level="frame", frame_mode="broadcast")
    rows = list(csv.DictReader(open(tmp_path / "run" / "predictions.csv")))
    assert len(rows) == 60 + 50 + 60
    by_vid = {}
    for r in rows:
        by_vid.setdefault(r["frame_id"].rsplit("/", 1)[0], set()).add(r["pred"])
    assert all(len(s) == 1 for s in by_vid.values())
    assert by_vid[vid_of("90001", 1)] == {"1"} and by_vid[vid_of("90001", 2)] == {"0"}
    assert res.metrics["frame"]["n"] == 170


def test_frame_window_mode_covers_every_frame(release, tmp_path):
    class FramesFake(FakeBackend):
        needs_frames = True

    res, be = run(release, tmp_path, backend=FramesFake(), level="frame", frame_mode="window", sampler="fixed",
                  window_s=2.0, hop_s=1.0, num_frames=4, frame_size=32)
    for o in res.outcomes:  # frames are sampled inside each window
        a, b = o.unit.video_span
        assert len(o.frame_indices) == 4 and all(a <= i < b for i in o.frame_indices)
    units = [o.unit for o in res.outcomes if o.unit.video_id == vid_of("90001", 1)]
    assert [u.span for u in units] == [(0, 20), (10, 30), (20, 40), (30, 50), (40, 60)]
    # each window gets only the transcript chunks it overlaps
    assert units[0].transcript == "Well maybe, I"
    assert units[-1].transcript.endswith("not sure.") and "Well" not in units[-1].transcript
    rows = list(csv.DictReader(open(tmp_path / "run" / "predictions.csv")))
    assert len(rows) == 170 and all(r["pred"] in ("0", "1") and r["p_amb"] for r in rows)
    assert res.metrics["frame"]["n"] == 170


def test_zero_frame_video_fails_alone(release, tmp_path):
    class FramesFake(FakeBackend):
        needs_frames = True

    bad = release.parent / "BAD"
    import shutil
    shutil.copytree(release, bad)
    (bad / vid_of("90001", 2)).write_bytes(b"")  # zero bytes: no frame at all
    res, _ = run(bad, tmp_path, backend=FramesFake(), sampler="fixed", frame_size=32)
    fails = [json.loads(l) for l in open(tmp_path / "run" / "failures.jsonl")]
    assert any(f["video_id"] == vid_of("90001", 2) and "empty file" in f["reason"] for f in fails)
    assert res.metrics["counts"]["failed_videos"] == 1 and res.metrics["video"]["n"] == 2
    # window mode reads the timeline first: the same video fails there, the others go on
    res, _ = run(bad, tmp_path, backend=FramesFake(), sampler="fixed", frame_size=32, level="frame",
                 frame_mode="window")
    c = res.metrics["counts"]
    assert c["failed_videos"] == 1 and c["skipped"] == 1 and res.metrics["frame"]["n"] == 60 + 60


# ----------------------------------------------------------------------------- metrics references
def test_constant_references_on_the_iclr_test_counts():
    video = np.r_[np.ones(318), np.zeros(525 - 318)].astype(int)
    ref = constant_references(video)
    assert round(ref["always_0"]["avgf1"], 4) == 0.2828 and round(ref["always_1"]["avgf1"], 4) == 0.3772
    frame = np.r_[np.ones(65756), np.zeros(335110 - 65756)].astype(int)
    ref = constant_references(frame)
    assert round(ref["always_0"]["avgf1"], 4) == 0.4456 and round(ref["always_1"]["avgf1"], 4) == 0.1640


# ----------------------------------------------------------------------------- CLI, servers, tiny models
def test_cli_fake_backend_and_bad_model_path(release, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["zeroshot", "--data-root", str(release), "--out", str(out), "--no-progress", "--prompt", "d1"])
    assert rc == 0
    run_dir = out / "stages" / "zeroshot" / "fake-d1-compat-video-test"
    assert (run_dir / "metrics.yml").is_file() and (run_dir / "config.yaml").is_file()
    rc = main(["zeroshot", "--data-root", str(release), "--out", str(out), "--backend", "hf", "--model",
               str(tmp_path / "nope"), "--run-name", "bad"])
    assert rc == 2 and "model path does not exist" in capsys.readouterr().err
    assert not (out / "stages" / "zeroshot" / "bad").exists()


def test_cli_unreachable_server_writes_no_result(release, tmp_path, capsys):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = tmp_path / "o"
    rc = main(["zeroshot", "--data-root", str(release), "--out", str(out), "--backend", "openai", "--model", "m",
               "--base-url", f"http://127.0.0.1:{port}/v1", "--retries", "0", "--sampler", "fixed",
               "--frame-size", "32", "--run-name", "srv", "--no-progress"])
    assert rc == 2 and "unreachable" in capsys.readouterr().err
    assert not (out / "stages" / "zeroshot" / "srv" / "predictions.csv").exists()


def test_cli_server_that_fails_then_recovers(release, tmp_path):
    from test_zeroshot_http import FakeServer, completion

    srv = FakeServer()
    try:
        srv.script = [(500, {"error": "x"}, 0), (200, completion("Ambivalent", [("Amb", -0.2), ("Non", -1.9)]), 0)]
        out = tmp_path / "o"
        rc = main(["zeroshot", "--data-root", str(release), "--out", str(out), "--backend", "openai", "--model", "m",
                   "--base-url", srv.base_url, "--backoff-s", "0.01", "--concurrency", "2", "--sampler", "fixed",
                   "--frame-size", "32", "--style", "chat", "--run-name", "srv", "--no-progress"])
        assert rc == 0
        m = yaml.safe_load(open(out / "stages" / "zeroshot" / "srv" / "metrics.yml"))
        assert m["counts"]["answered"] == 3 and isinstance(m["video"]["ap"], float)
        n_req = len(srv.requests)
        assert n_req == 4  # one 500, then three answers
        main(["zeroshot", "--data-root", str(release), "--out", str(out), "--backend", "openai", "--model", "m",
              "--base-url", srv.base_url, "--sampler", "fixed", "--frame-size", "32", "--style", "chat",
              "--run-name", "srv", "--no-progress"])
        assert len(srv.requests) == n_req  # rerun: all cached
        main(["zeroshot", "--data-root", str(release), "--out", str(out), "--backend", "openai", "--model", "m",
              "--base-url", srv.base_url, "--num-frames", "0", "--run-name", "txt", "--no-progress", "--limit", "1"])
        parts = srv.requests[-1]["body"]["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["text"]  # text-only request
    finally:
        srv.close()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    pytest.importorskip("transformers")
    try:
        from bah.apps.zeroshot.tiny_model import save_tiny_causal_lm, save_tiny_video_llava
    except ImportError as exc:  # pragma: no cover - depends on the installed transformers
        pytest.skip(f"transformers lacks a class the tiny models need: {exc}")
    d = tmp_path_factory.mktemp("tiny")
    try:
        return save_tiny_video_llava(d / "vl"), save_tiny_causal_lm(d / "lm")
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"transformers lacks a class the tiny models need: {exc}")


class Counting:
    """Wrap a backend's predict to count real model calls."""

    def __init__(self, be):
        self.be, self.calls = be, 0
        orig = be.predict

        def predict(item):
            self.calls += 1
            return orig(item)

        be.predict = predict


@pytest.mark.slow
def test_tiny_video_llava_end_to_end(release, tiny_models, tmp_path, monkeypatch):
    from bah.apps.zeroshot.hf_backend import HFVideoBackend

    vl, _ = tiny_models
    be = HFVideoBackend(model=str(vl), max_new_tokens=3)
    c = Counting(be)
    res, _ = run(release, tmp_path, backend=be, prompt="d1", sampler="fixed", frame_size=28)
    assert c.calls == 4 and res.metrics["counts"]["answered"] == 4
    for o in res.outcomes:
        assert np.isfinite(o.answer.scores).all()
    v = res.metrics["video"]
    assert isinstance(v["ap"], float) and v["ap"] > 0.0
    res2, _ = run(release, tmp_path, backend=be, prompt="d1", sampler="fixed", frame_size=28)
    assert c.calls == 4 and res2.cache_hits == 4  # rerun: zero model calls
    # constrained answers: the label is the argmax of the candidate scores
    bc = HFVideoBackend(model=str(vl), answer="choice")
    res3, _ = run(release, tmp_path, backend=bc, prompt="d1", sampler="fixed", frame_size=28,
                  cache=ResponseCache(None))
    for o in res3.outcomes:
        assert o.label == int(o.answer.scores[1] > o.answer.scores[0]) and o.parsed


@pytest.mark.slow
def test_tiny_models_through_the_cli(release, tiny_models, tmp_path):
    vl, lm = tiny_models
    out = tmp_path / "o"
    rc = main(["zeroshot", "--data-root", str(release), "--out", str(out), "--backend", "hf", "--model", str(vl),
               "--max-new-tokens", "2", "--prompt", "s", "--sampler", "compat", "--no-progress"])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "stages" / "zeroshot" / "hf-s-compat-video-test" / "predictions.csv")))
    assert len(rows) == 4 and all(r["ll_non"] and r["ll_amb"] for r in rows)
    rc = main(["zeroshot", "--data-root", str(release), "--out", str(out), "--backend", "hf-text", "--model", str(lm),
               "--max-new-tokens", "2", "--prompt", "t", "--level", "frame", "--no-progress"])
    assert rc == 0
    m = yaml.safe_load(open(out / "stages" / "zeroshot" / "hf-text-t-compat-frame-broadcast-test" / "metrics.yml"))
    assert m["counts"]["skipped"] == 1 and m["frame"]["n"] == 170 and isinstance(m["frame"]["ap"], float)
    assert set(m["run"]["versions"]) == {"torch", "transformers"}
    # chat style: the model's own chat template renders the same content
    for backend, model in (("hf", vl), ("hf-text", lm)):
        rc = main(["zeroshot", "--data-root", str(release), "--out", str(out), "--backend", backend, "--model",
                   str(model), "--max-new-tokens", "2", "--prompt", "td2", "--style", "chat", "--sampler", "fixed",
                   "--frame-size", "28", "--no-progress"])
        assert rc == 0
        m = yaml.safe_load(open(out / "stages" / "zeroshot" / f"{backend}-td2-chat-video-test" / "metrics.yml"))
        assert m["counts"]["answered"] == 3 and m["counts"]["skipped"] == 1


def test_one_malformed_answer_fails_only_its_video(release, tmp_path):
    from bah.apps.zeroshot.backend import BackendError

    class Flaky(FakeBackend):
        def predict(self, item):
            if "dog" in (item.transcript or ""):
                raise BackendError("malformed chat completion")
            return super().predict(item)

    res, _ = run(release, tmp_path, backend=Flaky())
    assert res.metrics["counts"]["failed_videos"] == 1 and res.metrics["video"]["n"] == 2
    fails = [json.loads(l) for l in open(tmp_path / "run" / "failures.jsonl")]
    assert {f["video_id"] for f in fails if "malformed" in (f["reason"] or "")} == {vid_of("90001", 2)}


def test_packed_faces_as_visual_input(release, tmp_path):
    from bah.core.layout import video_dir

    class FramesFake(FakeBackend):
        needs_frames = True
        seen = []

        def predict(self, item):
            self.seen.append([f.shape for f in item.frames])
            return super().predict(item)

    for pid, q, _, n, *_ in VIDEOS:
        d = video_dir(tmp_path, vid_of(pid, q))
        d.mkdir(parents=True)
        np.save(d / "video.npy", np.zeros((n, 48, 48, 3), np.uint8))
    be = FramesFake()
    res, _ = run(release, tmp_path, backend=be, visual="faces", sampler="fixed", frame_size=48, prompt="d1")
    assert res.metrics["counts"]["answered"] == 4 and all(s == [(48, 48, 3)] * 8 for s in be.seen)


@pytest.mark.slow
def test_tiny_model_error_on_one_item_fails_that_video_only(release, tiny_models, tmp_path):
    from bah.apps.zeroshot.hf_backend import HFTextBackend

    _, lm = tiny_models
    be = HFTextBackend(model=str(lm), max_new_tokens=2)
    orig = be.model.forward

    def forward(*a, **kw):
        ids = kw.get("input_ids")
        if ids is not None and ids.shape[1] > 40:  # the longest transcript overflows, say
            raise RuntimeError("CUDA out of memory (simulated)")
        return orig(*a, **kw)

    be.model.forward = forward
    res, _ = run(release, tmp_path, backend=be, prompt="t", cache=ResponseCache(None))
    errs = [o for o in res.outcomes if o.error]
    assert [o.unit.video_id for o in errs] == [vid_of("90002", 1)] and "out of memory" in errs[0].error
    assert res.metrics["counts"]["answered"] == 2 and res.metrics["video"]["n"] == 2
