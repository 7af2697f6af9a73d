"""Registry, configuration, atomic files, shards, status records, media decoding, the bah command."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bah import cli
from bah.core.config import ConfigError, load_config, parse_set, section
from bah.core.files import atomic_path, config_hash, read_jsonl, save_npy, write_jsonl
from bah.core.registry import Registry
from bah.core.shards import block_bounds, resolve_block, take_block
from bah.core.status import StageStatus


def test_registry_rejects_duplicates_and_lists_names_on_unknown():
    reg = Registry("widget")

    @reg.register("b")
    class B:
        pass

    reg.register("a", object)
    assert reg.list() == ["a", "b"]
    with pytest.raises(KeyError, match="already registered"):
        reg.register("a", object)
    with pytest.raises(KeyError, match="registered: a, b"):
        reg.get("zzz")


def test_registry_checks_base_class():
    class Base:
        pass

    reg = Registry("thing", Base)
    with pytest.raises(TypeError):
        reg.register("x", int)


@section("_test_stage")
@dataclasses.dataclass(frozen=True)
class _StageCfg:
    size: int = 128
    name: str = "hog"
    fast: bool = False
    ratio: float = 0.5


def test_config_precedence_cli_over_yaml_over_env(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("data_root: /from/yaml\n_test_stage: {size: 64, fast: true}\n")
    env = {"BAH_DATA_ROOT": "/from/env", "BAH_OUT": "/env/out"}
    cfg = load_config(yml, {"_test_stage.size": "32"}, sections=["_test_stage"], env=env)
    assert cfg["_test_stage"].size == 32 and cfg["_test_stage"].fast is True
    assert cfg.data_root == Path("/from/yaml") and cfg.out == Path("/env/out")
    cfg2 = load_config(None, {}, sections=["_test_stage"], env=env)
    assert cfg2.data_root == Path("/from/env") and cfg2["_test_stage"].size == 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg2["_test_stage"].size = 1  # read-only after parsing
    with pytest.raises(TypeError):
        cfg2.sections["x"] = 1


def test_config_errors_name_the_setting(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("_test_stage: {sise: 64}\n")
    with pytest.raises(ConfigError, match="sise"):
        load_config(yml, sections=["_test_stage"], env={})
    with pytest.raises(ConfigError, match="size"):
        load_config(None, {"_test_stage.size": "big"}, sections=["_test_stage"], env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", env={})
    assert parse_set(["a.b=3", "c=x y"]) == {"a.b": 3, "c": "x y"}
    with pytest.raises(ConfigError):
        parse_set(["novalue"])


def test_config_never_uses_a_literal_tilde_and_saves_resolved(tmp_path):
    cfg = load_config(None, {"out": "~/bah-out"}, sections=["_test_stage"], env={})
    assert "~" not in str(cfg.out) and cfg.out.is_absolute()
    cfg.save(tmp_path / "resolved.yaml")
    import yaml

    saved = yaml.safe_load((tmp_path / "resolved.yaml").read_text())
    assert saved["_test_stage"]["size"] == 128 and saved["out"] == str(cfg.out)


def test_atomic_write_leaves_previous_file_on_failure(tmp_path):
    dest = tmp_path / "a.jsonl"
    write_jsonl(dest, [{"x": 1}])
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert read_jsonl(dest) == [{"x": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]


def test_save_npy_refuses_non_finite(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        save_npy(tmp_path / "x.npy", np.array([1.0, np.nan], np.float32))
    assert not (tmp_path / "x.npy").exists()
    save_npy(tmp_path / "x.npy", np.ones((3, 2), np.float32))
    assert np.load(tmp_path / "x.npy").shape == (3, 2)
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})


def test_read_jsonl_names_the_bad_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"m.jsonl:2"):
        read_jsonl(p)


@pytest.mark.parametrize("n,nb", [(10, 3), (3, 5), (0, 2), (1118, 7)])
def test_blocks_cover_everything_once_first_blocks_larger(n, nb):
    items = list(range(n))
    blocks = [list(take_block(items, nb, b)) for b in range(nb)]
    assert sum(blocks, []) == items
    sizes = [len(b) for b in blocks]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1
    assert sizes[: n % nb] == [n // nb + 1] * (n % nb)


def test_block_from_slurm_array():
    assert resolve_block(None, None, {}) == (1, 0)
    assert resolve_block(4, 2, {"SLURM_ARRAY_TASK_ID": "0"}) == (4, 2)
    assert resolve_block(None, None, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "5"}) == (5, 3)
    with pytest.raises(ValueError):
        block_bounds(10, 3, 3)
    with pytest.raises(ValueError):
        resolve_block(None, None, {"SLURM_ARRAY_TASK_ID": "3"})


def test_status_records_resume_and_failures(tmp_path):
    st = StageStatus(tmp_path, "faces", "h1", block="0")
    st.begin()
    vid = "Videos/1/Visite_1/1 Question 2 x.mp4"
    assert not st.is_done(vid)
    st.mark_done(vid, frames=10)
    assert st.is_done(vid)
    assert not StageStatus(tmp_path, "faces", "h2").is_done(vid)  # other settings: redo
    st.mark_failed("Videos/2/Visite_1/b.mp4", "no face")
    st2 = StageStatus(tmp_path, "faces", "h1", block="1")
    st2.mark_failed("Videos/3/Visite_1/c.mp4", "corrupt")
    assert sorted(f["reason"] for f in st.failures()) == ["corrupt", "no face"]
    st.begin()  # a rerun of block 0 starts a fresh failure list for that block only
    assert [f["reason"] for f in st.failures()] == ["corrupt"]


def _make_video(path, n=7, w=64, h=48, fps=25, audio=True, rotation=0):
    from bah.core.media import write_video

    img = np.zeros((h, w, 3), np.uint8)
    img[:10, :20] = 255
    t = np.arange(int(16000 * n / fps)) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32) if audio else None
    write_video(path, [img] * n, fps, audio=tone, codec="libx264", rotation=rotation)

def test_media_probe_frames_rotation_audio(tmp_path):
    from bah.core.media import iter_frames, probe, read_audio

    v = tmp_path / "82557 Question 5 é.mp4"
    _make_video(v, n=7)
    info = probe(v)
    assert info.n_frames == 7 and info.has_audio and info.audio_rate == 16000 and not info.vfr
    assert abs(info.avg_fps - 25) < 0.01
    frames = list(iter_frames(v))
    assert len(frames) == 7 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    audio = read_audio(v)
    assert audio.dtype == np.float32 and 0.2 < np.abs(audio).max() <= 1.0

    r = tmp_path / "rot.mp4"
    _make_video(r, n=3, audio=False, rotation=90)
    info = probe(r)
    assert info.rotation == 90 and (info.width, info.height) == (48, 64)
    f = next(iter_frames(r))
    assert f.shape == (64, 48, 3)
    ys, xs = np.nonzero(f[..., 0] > 128)  # the white top-left block, turned as ffmpeg displays it
    assert ys.min() >= 40 and xs.max() < 12
    assert read_audio(r) is None


def test_media_bad_inputs_name_the_file(tmp_path):
    from bah.core.media import MediaError, probe

    with pytest.raises(MediaError, match="not found"):
        probe(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty.mp4"):
        probe(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(os.urandom(4096))
    with pytest.raises(MediaError, match="junk.mp4"):
        probe(tmp_path / "junk.mp4")
    good = tmp_path / "good.mp4"
    _make_video(good, n=30, audio=False)
    data = good.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])
    try:
        info = probe(tmp_path / "trunc.mp4")
        assert info.n_frames < 30
    except MediaError as exc:
        assert "trunc.mp4" in str(exc)


def test_bah_command_help_and_unknown():
    out = subprocess.run([sys.executable, "-m", "bah.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "manifest" in out.stdout and "synth" in out.stdout
    out = subprocess.run([sys.executable, "-m", "bah.cli", "nonsense"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command" in out.stderr
    assert set(cli.COMMANDS) >= {"synth", "manifest", "faces", "features", "labels", "index", "train", "evaluate"}
