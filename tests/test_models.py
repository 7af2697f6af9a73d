"""Fixed-mode behaviour of the models, the TCN, the face path and mixed precision."""
import pytest
import torch

from bah.models import (ModelCompat, TemporalConvNet, create_model, describe, parse_modalities,
                        receptive_field)

FUSIONS = ["lfan", "can", "jmt", "mt"]
SMALL = {"vision": [8, 8], "vggish": [8, 8], "bert": [8, 8], "landmarks": [8, 8], "logmel": [8, 8]}
MODS = [("vision", 16), ("vggish", 12), ("bert", 10)]


def _inputs(b=3, length=20, mods=MODS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(b, length, dim, generator=g) for name, dim in mods}


def _model(name, mods=MODS, compat=False, **kw):
    torch.manual_seed(0)
    kw.setdefault("tcn_channels", SMALL)
    kw.setdefault("dropout", 0.0)
    return create_model(name, mods if name != "unimodal" else mods[:1], compat=compat, **kw)


# -- TCN ---------------------------------------------------------------------------------
@pytest.mark.parametrize("levels,expected", [(4, 121), (5, 249)])
def test_tcn_is_causal_with_documented_receptive_field(levels, expected):
    assert receptive_field(5, levels) == expected
    tcn = TemporalConvNet(3, [4] * levels, kernel_size=5, dropout=0.0).double().eval()
    length = expected + 40
    x = torch.randn(1, 3, length, dtype=torch.float64, requires_grad=True)
    t = length - 1
    tcn(x)[0, :, t].sum().backward()
    seen = (x.grad[0].abs().sum(0) > 0).nonzero().flatten()
    assert seen.max().item() == t  # nothing from the future
    assert t - seen.min().item() + 1 == expected


def test_tcn_weight_norm_definition():
    tcn = TemporalConvNet(6, [5], kernel_size=3)
    conv = tcn.network[0].conv1
    v, g = conv.weight_v, conv.weight_g
    manual = g * v / v.norm(dim=(1, 2), keepdim=True)
    assert torch.allclose(conv.weight(), manual, atol=1e-7)
    assert tcn.network[0].net[0] is conv  # the aliased checkpoint names are one module
    with pytest.raises(ValueError, match="at least one level"):
        TemporalConvNet(3, [])


# -- construction ------------------------------------------------------------------------
def test_modality_parsing_and_errors():
    mods = parse_modalities([("video", None), "vggish", ("bert", 384), ("landmarks", 136)])
    assert [(m.name, m.dim, m.branch) for m in mods] == [("video", None, "video"), ("vggish", 128, "vggish"),
                                                         ("bert", 384, "bert"), ("landmarks", 136, "landmarks")]
    assert parse_modalities([("vision", 512)])[0].branch == "video"
    with pytest.raises(ValueError, match="same visual branch"):
        parse_modalities([("video", None), ("vision", 512)])
    with pytest.raises(ValueError, match="give its width"):
        parse_modalities([("logmel", None)])
    with pytest.raises(ValueError, match="at least two"):
        create_model("jmt", [("vggish", 128)])
    with pytest.raises(ValueError, match="exactly one"):
        create_model("unimodal", MODS)


def test_missing_or_misshaped_input_names_the_modality():
    model = _model("can").eval()
    x = _inputs()
    with pytest.raises(KeyError, match="bert"):
        model({k: v for k, v in x.items() if k != "bert"})
    with pytest.raises(ValueError, match="'vggish' expects"):
        model({**x, "vggish": torch.randn(3, 20, 7)})
    with pytest.raises(ValueError, match="mask has shape"):
        model(x, torch.ones(3, 19, dtype=torch.bool))


def test_describe_and_compat_switches():
    info = describe(_model("can"))
    assert info["mode"] == "fixed" and info["total"] == info["trainable"] > 0
    assert "CAN[vision,vggish,bert] fixed" in info["summary"]
    assert _model("lfan", compat=True).dropout == 0.1 and _model("can", compat=True).dropout == 0.2
    custom = ModelCompat.resolve({"jmt_fusion_seq_first": True})
    assert custom.jmt_fusion_seq_first and custom.jmt_use_text
    with pytest.raises(KeyError, match="unknown model compat"):
        ModelCompat.resolve({"nope": True})


# -- fixed-mode properties ---------------------------------------------------------------
@pytest.mark.parametrize("name", FUSIONS + ["unimodal"])
def test_fixed_mode_no_sample_influences_another(name):
    model = _model(name).eval()
    x = _inputs()
    with torch.no_grad():
        ref = model(x)["logits"]
        pert = {k: v.clone() for k, v in x.items()}
        for v in pert.values():
            v[1] += 3.0 * torch.randn_like(v[1])
        out = model(pert)["logits"]
        alone = model({k: v[:1] for k, v in x.items()})["logits"]
    assert torch.allclose(out[0], ref[0], atol=1e-5) and torch.allclose(out[2], ref[2], atol=1e-5)
    assert not torch.allclose(out[1], ref[1], atol=1e-3)
    assert torch.allclose(alone[0], ref[0], atol=1e-5)


@pytest.mark.parametrize("name", ["jmt", "mt"])
def test_compat_jmt_mixes_batch_and_ignores_text(name):
    model = _model(name, compat=True).eval()
    x = _inputs()
    with torch.no_grad():
        ref = model(x)["logits"]
        pert = {k: v.clone() for k, v in x.items()}
        pert["vision"][1] += 3.0
        assert not torch.allclose(model(pert)["logits"][0], ref[0], atol=1e-4)
        assert torch.equal(model({**x, "bert": torch.randn(3, 20, 10)})["logits"], ref)


@pytest.mark.parametrize("name", FUSIONS)
def test_fixed_mode_uses_text(name):
    model = _model(name).eval()
    x = _inputs()
    with torch.no_grad():
        ref = model(x)["logits"]
        out = model({**x, "bert": x["bert"] + torch.randn_like(x["bert"])})["logits"]
    assert (out - ref).abs().max() > 1e-5  # float noise is ~1e-7


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", FUSIONS + ["unimodal"])
def test_padded_frames_do_not_change_real_outputs(name, train):
    model = _model(name).train(train)
    x = _inputs()
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[0, 14:] = False
    mask[2, 5:] = False
    pert = {k: v.clone() for k, v in x.items()}
    for v in pert.values():
        v[~mask] = 100.0 * torch.randn_like(v[~mask])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ref = model(x, mask)["logits"]
    stats_ref = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    out = model(pert, mask)["logits"]
    assert torch.allclose(out[mask], ref[mask], atol=1e-4)
    if train:  # BatchNorm statistics ignore padding
        for k, v in model.state_dict().items():
            assert torch.allclose(v.float(), stats_ref[k].float(), atol=1e-5), k
        assert any(not torch.equal(v, state[k]) for k, v in stats_ref.items() if "running_mean" in k)


@pytest.mark.parametrize("name", FUSIONS + ["unimodal"])
def test_forward_backward_masks_autocast_and_no_input_mutation(name):
    model = _model(name, dropout=0.1).train()
    x = _inputs(b=2, length=12)
    snapshot = {k: v.clone() for k, v in x.items()}
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    for m in (None, mask):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, m)
        assert out["logits"].shape == (2, 12, 2) and out["logits"].dtype == torch.float32
        assert out["feat_fused"].shape[:2] == (2, 12)
        # every input modality has its features; the unimodal model sees the first one only
        used = MODS[:1] if name == "unimodal" else MODS
        assert {k for k in out if k.startswith("feat_") and k != "feat_fused"} == {f"feat_{m}" for m, _ in used}
        model.zero_grad()
        out["logits"].float().sum().backward()
        assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad
                   and not n.startswith("conv_c") and "reduce_feats_dim" not in n)
    for k in x:
        assert torch.equal(x[k], snapshot[k])
    assert set(x) == set(snapshot)


def test_arbitrary_modalities_and_original_input_shape():
    mods = [("landmarks", 136), ("logmel", 64), ("bert", 384)]
    for name in FUSIONS:
        model = _model(name, mods).eval()
        x = _inputs(b=2, length=9, mods=mods)
        with torch.no_grad():
            a = model(x)["logits"]
            b = model({k: v[:, None] for k, v in x.items()})["logits"]  # (B, 1, L, D)
        assert a.shape == (2, 9, 2) and torch.equal(a, b)


# -- face path ---------------------------------------------------------------------------
@pytest.mark.parametrize("compat", [False, True], ids=["fixed", "compat"])
def test_video_path_through_ir50(compat):
    mods = [("video", None), ("vggish", 12)]
    model = _model("can", mods, compat=compat, tcn_channels={"video": [8], "vggish": [8]},
                   backbone_kwargs={"input_size": 8})
    model.train()
    # a frozen backbone stays in eval mode in fixed mode; compat follows model.train()
    assert model.spatial.visual.training is compat
    assert not any(p.requires_grad for p in model.spatial.visual.parameters())
    faces = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    x = {"video": faces, "vggish": torch.randn(2, 3, 12)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out["logits"].float().sum().backward()
    assert torch.isfinite(out["logits"]).all() and out["feat_video"].shape == (2, 3, 8)
    if not compat:  # eval-mode backbone: a frame's embedding does not depend on the others
        model.eval()
        with torch.no_grad():
            one = model._encode_faces(faces[:1, :1], "video")
            many = model._encode_faces(faces, "video")
        assert torch.allclose(one[0, 0], many[0, 0], atol=1e-5)


def test_ir50_at_40x40_gives_unit_embeddings():
    from bah.models import build_ir50
    net = build_ir50().eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 40, 40) * 2 - 1)
    assert y.shape == (1, 512) and torch.allclose(y.norm(dim=1), torch.ones(1), atol=1e-5)
    with pytest.raises(ValueError, match="40x40"):
        net(torch.rand(1, 3, 48, 48))


def test_resnet_backbone_declares_size_and_dim():
    model = _model("unimodal", [("video", None)], tcn_channels={"video": [4]}, backbone="resnet18",
                   backbone_kwargs={"input_size": 32, "reduce_dim": 64}).eval()
    assert model.spatial.visual.input_size == 32 and model.spatial.visual.out_dim == 64
    assert model.temporal.video.num_inputs == 64
    with torch.no_grad():
        out = model({"video": torch.rand(1, 2, 3, 32, 32)})
    assert out["logits"].shape == (1, 2, 2)


# -- long sequences ----------------------------------------------------------------------
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("name", ["lfan", "can", "unimodal"])
def test_long_video_eval_is_finite(name, dtype):
    mods = [("vision", 4), ("vggish", 4), ("bert", 4)]
    model = _model(name, mods, tcn_channels={"vision": [4], "vggish": [4], "bert": [4]}).eval()
    x = {k: 3 * v for k, v in _inputs(b=1, length=5000, mods=mods).items()}
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        out = model(x)["logits"]
    assert out.shape == (1, 5000, 2) and torch.isfinite(out).all()


@pytest.mark.slow  # 5000x5000 attention per stream: ~30 s on one core for the three cases
@pytest.mark.parametrize("name,dtype", [("jmt", torch.float32), ("jmt", torch.float16), ("mt", torch.bfloat16)],
                         ids=["jmt-fp32", "jmt-fp16", "mt-bf16"])
def test_long_video_eval_is_finite_attention(name, dtype):
    mods = [("vision", 4), ("vggish", 4), ("bert", 4)]
    model = _model(name, mods, tcn_channels={"vision": [4], "vggish": [4], "bert": [4]}).eval()
    x = {k: 3 * v for k, v in _inputs(b=1, length=5000, mods=mods).items()}
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        out = model(x)["logits"]
    assert out.shape == (1, 5000, 2) and torch.isfinite(out).all()


def test_shared_keywords_are_accepted_by_every_model():
    kw = dict(window_length=20, num_heads=2, modal_dim=16, fusion_dim=64, kernel_size=3)
    for name in FUSIONS + ["unimodal"]:
        _model(name, **kw)
    with pytest.raises(TypeError):
        _model("can", not_an_option=1)


def test_cached_embeddings_equal_online_backbone_in_fixed_mode():
    from bah.models import load_original_state_dict

    chans = {"video": [8], "vggish": [8]}
    video = _model("jmt", [("video", None), ("vggish", 12)], tcn_channels=chans,
                   backbone_kwargs={"input_size": 8}).eval()
    vision = _model("jmt", [("vision", 512), ("vggish", 12)], tcn_channels=chans).eval()
    load_original_state_dict(vision, video.state_dict())
    faces = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    aud = torch.randn(2, 4, 12)
    with torch.no_grad():
        emb = video.spatial.visual(faces.reshape(8, 3, 8, 8)).reshape(2, 4, 512)
        a = video({"video": faces, "vggish": aud})["logits"]
        b = vision({"vision": emb, "vggish": aud})["logits"]
    assert torch.allclose(a, b, atol=1e-5)
