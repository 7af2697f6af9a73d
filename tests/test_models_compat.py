"""Checkpoint compatibility and compat-mode numerics against the reference fixtures."""
import json

import numpy as np
import pytest
import torch

from bah.models import (BACKBONES, MODELS, build_ir50, complete_aliases, create_model, describe,
                        load_ir50_weights, load_original_state_dict)

README_MODS = [("video", None), ("vggish", 128), ("bert", 768)]
VISION_MODS = [("vision", 512), ("vggish", 128), ("bert", 768)]
# original-training.md §4.8: total / trainable parameters in the README configuration.
PARAMS = {"lfan": (42_289_002, 5_001_378), "can": (43_104_138, 5_816_514),
          "jmt": (43_635_210, 6_347_586), "mt": (43_271_434, 5_983_810)}


def _entries(sd):
    return [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()]


@pytest.fixture(scope="module")
def readme_models():
    torch.manual_seed(0)
    return {name: create_model(name, README_MODS, compat=True) for name in PARAMS}


def test_registries_list_every_component():
    assert MODELS.list() == ["can", "jmt", "lfan", "mt", "unimodal"]
    assert BACKBONES.list() == ["ir50", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    with pytest.raises(KeyError, match="registered: can, jmt, lfan, mt, unimodal"):
        create_model("nope", VISION_MODS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_state_dict_matches_reference_keys(readme_models, reference_dir, name):
    ref = json.loads((reference_dir / "state_dict_keys" / f"{name}_readme_config.json").read_text())
    model = readme_models[name]
    assert _entries(model.state_dict()) == ref  # keys, shapes, dtypes and order
    info = describe(model)
    assert (info["total"], info["trainable"]) == PARAMS[name]
    assert info["frozen"] == 37_287_624


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_vision_path_has_reference_keys_without_backbone(reference_dir, name):
    ref = json.loads((reference_dir / "state_dict_keys" / f"{name}_readme_config.json").read_text())
    model = create_model(name, VISION_MODS, compat=True)
    assert _entries(model.state_dict()) == [e for e in ref if not e[0].startswith("spatial.visual.")]
    # the fixed mode keeps the checkpoint layout too (JMT/MT add text projections only)
    fixed = create_model(name, VISION_MODS)
    extra = [k for k in fixed.state_dict() if k not in model.state_dict()]
    assert all(k.startswith("fuse.extra_proj.bert.") for k in extra), extra


@pytest.fixture(scope="module")
def ir50():
    return build_ir50()


def test_ir50_key_lists(reference_dir, ir50):
    model = ir50
    ref = json.loads((reference_dir / "state_dict_keys" / "ir50_visual_backbone.json").read_text())
    assert _entries(model.state_dict()) == ref
    inner = json.loads((reference_dir / "state_dict_keys" / "ir50_backbone_40x40.json").read_text())
    assert _entries(model.backbone.state_dict()) == inner
    assert sum(p.numel() for p in model.parameters()) == 37_287_624


def test_ir50_weight_loading(tmp_path, ir50):
    sd = {f"module.{k}": v.clone() for k, v in ir50.state_dict().items()}
    with torch.no_grad():
        sd["module.backbone.output_layer.3.weight"].normal_()
    dst = load_ir50_weights(sd, ir50)
    assert torch.equal(dst.backbone.output_layer[3].weight, sd["module.backbone.output_layer.3.weight"])
    # the inner Backbone format (no prefix, no logits) loads too
    inner = {k[len("module.backbone."):]: v for k, v in sd.items() if k.startswith("module.backbone.")}
    load_ir50_weights(inner, ir50)
    torch.save({"bad.key": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="bad.pth"):
        load_ir50_weights(tmp_path / "bad.pth")


def test_full_checkpoint_loads_strictly_with_aliases_prefix_and_vision_path(tmp_path, readme_models):
    src = readme_models["can"]
    sd = {f"module.{k}": v.clone() for k, v in src.state_dict().items()}
    with torch.no_grad():
        key = "module.temporal.video.network.0.conv1.weight_v"
        sd[key].normal_()
        sd[key.replace("conv1", "net.0")] = sd[key]
    path = tmp_path / "model.pt"
    torch.save(sd, path)
    full = src  # strict load into a model with the IR-50
    load_original_state_dict(full, path)
    assert torch.equal(full.temporal.video.network[0].net[0].weight_v, sd[key])
    vision = create_model("can", VISION_MODS, compat=True)
    load_original_state_dict(vision, path)  # spatial.visual.* simply dropped
    assert torch.equal(vision.temporal.video.network[0].conv1.weight_v, sd[key])
    # one alias name alone is enough; twins that disagree are refused
    only_net = {k: v for k, v in src.state_dict().items() if ".conv1." not in k and ".conv2." not in k}
    load_original_state_dict(vision, only_net)
    bad = dict(src.state_dict())
    bad["temporal.bert.network.1.net.4.bias"] = bad["temporal.bert.network.1.net.4.bias"] + 1
    with pytest.raises(RuntimeError, match="hold different tensors"):
        complete_aliases(bad)
    with pytest.raises(RuntimeError, match="no spatial.visual"):
        load_original_state_dict(src, {k: v for k, v in src.state_dict().items() if not k.startswith("spatial.")})


def _fixture_model(large_reference_dir, name):
    z = np.load(large_reference_dir / "fixtures" / f"model_forward_{name}.npz", allow_pickle=False)
    cfg = json.loads(str(z["config_json"]))
    if name == "lfan":
        kw = dict(tcn_channels=cfg["tcn_channel"], window_length=cfg["example_length"],
                  modal_dim=cfg["modal_dim"], num_heads=cfg["num_heads"], kernel_size=cfg["kernel_size"])
    else:
        kw = dict(tcn_channels={k: v["channel"] for k, v in cfg["tcn_settings"].items()})
    model = create_model(name, VISION_MODS, compat=True, **kw).eval()
    load_original_state_dict(model, {k[3:]: z[k] for k in z.files if k.startswith("sd/")})
    keys = [k for k in model.state_dict()]
    assert keys == [str(k) for k in z["state_dict_keys_in_order"]]
    return model, z


@pytest.fixture(scope="module")
def fixture_inputs(large_reference_dir):
    z = np.load(large_reference_dir / "fixtures" / "model_forward_inputs.npz", allow_pickle=False)
    return {k: torch.from_numpy(z[k]) for k in z.files}


@pytest.mark.parametrize("name", ["lfan", "can", "mt", "jmt"])
def test_compat_forward_reproduces_reference_logits(large_reference_dir, fixture_inputs, name):
    model, z = _fixture_model(large_reference_dir, name)
    x = {"vision": fixture_inputs["video_features"], "vggish": fixture_inputs["vggish"],
         "bert": fixture_inputs["bert"]}
    snapshot = {k: v.clone() for k, v in x.items()}
    with torch.no_grad():
        out = model(x)
        np.testing.assert_allclose(out["logits"].numpy(), z["logits"], rtol=0, atol=2e-5)
        for m, ref_name in (("vision", "video"), ("vggish", "vggish"), ("bert", "bert")):
            np.testing.assert_allclose(out[f"feat_{m}"].transpose(1, 2).numpy(), z[f"inter/bn.{ref_name}"],
                                       rtol=0, atol=2e-5)
        # the two quirks: batch mixing (JMT/MT) and ignored text (JMT/MT)
        for i in (0, 1):
            alone = model({k: v[i:i + 1] for k, v in x.items()})["logits"]
            np.testing.assert_allclose(alone.numpy(), z[f"logits_sample{i}_alone"], rtol=0, atol=2e-5)
        alt = model({**x, "bert": fixture_inputs["bert_alt"]})["logits"]
        np.testing.assert_allclose(alt.numpy(), z["logits_bert_alt"], rtol=0, atol=2e-5)
    for k in x:  # inputs untouched
        assert torch.equal(x[k], snapshot[k])
    if name in ("jmt", "mt"):
        assert np.abs(z["logits_sample0_alone"][0] - z["logits"][0]).max() > 1e-3
        assert np.array_equal(z["logits_bert_alt"], z["logits"])


@pytest.mark.parametrize("name", ["lfan", "can", "mt", "jmt"])
def test_compat_forward_float64(large_reference_dir, fixture_inputs, name):
    model, z = _fixture_model(large_reference_dir, name)
    model = model.double()
    x = {"vision": fixture_inputs["video_features"].double(), "vggish": fixture_inputs["vggish"].double(),
         "bert": fixture_inputs["bert"].double()}
    with torch.no_grad():
        out = model(x)["logits"]
    np.testing.assert_allclose(out.numpy(), z["logits_float64"], rtol=0, atol=1e-9)


def test_lfan_compat_refuses_other_lengths():
    model = create_model("lfan", VISION_MODS, compat=True, window_length=16,
                         tcn_channels={"vision": [8], "vggish": [8], "bert": [8]}).eval()
    x = {"vision": torch.randn(1, 12, 512), "vggish": torch.randn(1, 12, 128), "bert": torch.randn(1, 12, 768)}
    with pytest.raises(ValueError, match="window_length=16"):
        model(x)


def test_checkpoint_wrappers_and_clear_errors(tmp_path):
    small = dict(tcn_channels={"vggish": [4, 4]})
    src = create_model("unimodal", [("vggish", 128)], **small)
    torch.save({"epoch": 3, "state_dict": src.state_dict()}, tmp_path / "wrapped.pt")
    dst = create_model("unimodal", [("vggish", 128)], **small)
    load_original_state_dict(dst, tmp_path / "wrapped.pt")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    wrong = create_model("unimodal", [("vggish", 128)], tcn_channels={"vggish": [4, 8]})
    with pytest.raises(RuntimeError, match=r"wrapped\.pt.*\n.*shape mismatch"):
        load_original_state_dict(wrong, tmp_path / "wrapped.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_original_state_dict(dst, tmp_path / "missing.pt")


def test_resnet_weights_accept_torchvision_layout():
    import torchvision

    from bah.models import ResNetBackbone, load_resnet_weights

    tv = torchvision.models.resnet18(weights=None)
    model = load_resnet_weights(ResNetBackbone("resnet18", reduce_dim=None, input_size=32), tv.state_dict())
    assert torch.equal(model.backbone.conv1.weight, tv.conv1.weight) and model.out_dim == 512


@pytest.mark.parametrize("name", ["jmt", "mt"])
def test_jmt_roles_follow_names_not_order(large_reference_dir, fixture_inputs, name):
    """vggish+vision+bert loads the original checkpoint strictly and gives its logits."""
    z = np.load(large_reference_dir / "fixtures" / f"model_forward_{name}.npz", allow_pickle=False)
    cfg = json.loads(str(z["config_json"]))
    kw = dict(tcn_channels={k: v["channel"] for k, v in cfg["tcn_settings"].items()})
    reordered = [VISION_MODS[1], VISION_MODS[0], VISION_MODS[2]]
    model = create_model(name, reordered, compat=True, **kw).eval()
    load_original_state_dict(model, {k[3:]: z[k] for k in z.files if k.startswith("sd/")})
    assert [m.name for m in model._roles[:2]] == ["vision", "vggish"]
    x = {"vision": fixture_inputs["video_features"], "vggish": fixture_inputs["vggish"],
         "bert": fixture_inputs["bert"]}
    with torch.no_grad():
        out = model(x)["logits"]
    np.testing.assert_allclose(out.numpy(), z["logits"], rtol=0, atol=2e-5)


def test_jmt_fixed_mode_same_model_in_any_order():
    torch.manual_seed(0)
    ref = create_model("jmt", README_MODS).eval()
    other = create_model("jmt", [("bert", 768), ("vggish", 128), ("video", None)]).eval()
    other.load_state_dict(ref.state_dict(), strict=True)
    g = torch.Generator().manual_seed(3)
    x = {"video": torch.rand(2, 6, 3, 40, 40, generator=g) * 2 - 1, "vggish": torch.randn(2, 6, 128, generator=g),
         "bert": torch.randn(2, 6, 768, generator=g)}
    with torch.no_grad():
        assert torch.equal(ref(x)["logits"], other(x)["logits"])
