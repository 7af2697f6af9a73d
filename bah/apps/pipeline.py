"""``bah demo`` and ``bah run-config``: the whole pipeline from videos to a report.

One pipeline description (a YAML mapping) drives both commands. It is frame level (a ``train:``
section: the paper's trainer) or video level (a ``challenge:`` section: a ``bah fit-video`` recipe,
configs/video-text-*.yaml), never both:

```yaml
name: demo                       # names the run (exp_id) and the report
reproduces: ...                  # the paper table row (run-config files)
weights: [{file: vggish.pth, what: ..., where: ...}]   # checked before anything runs
synth: {...}                     # only the demo: generate the synthetic dataset first
manifest: {...}  faces: {...}  features: {...}  labels: {...}  index: {...}   # stage sections
train: {model_name: LFAN, modality: ..., ...}   # flags of main.py (without the dashes)
pipeline: {parallel: 2, min_fraction: 0.1, timelines: 4, faces: auto}
```

A video-level recipe runs synth (when asked) -> manifest -> faces (only for a vision extractor) ->
transcribe (only when speech timing, ASR text or ``text_source: transcripts`` needs recognised
words) -> video-features (``video_features.extractors``, by default the recipe's
``challenge.features``) -> fit-video -> report (the run's summary and threshold curve).

Each stage is its own command module (``bah.cli.main([...])``), so the pipeline only orders
them. Output layout under ``--out``: ``data/`` (the synthetic dataset), ``work/`` (the stages'
``--out``: manifest, features, dataset_info.pkl), ``runs/`` (the training run), ``report/``.
A finished step leaves ``pipeline/steps/<step>.json`` holding the hash of its settings; a rerun
skips it. An interrupted step is simply run again: every stage resumes per video, and the
trainer resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import yaml

from bah.core.layout import LABEL_MODALITY
from bah.core.config import ConfigError
from bah.core.files import config_hash, read_yaml, write_json, write_yaml
from bah.core.registry import Registry

log = logging.getLogger("bah.apps.pipeline")

LABEL = LABEL_MODALITY
WEIGHTS_ENV = "BAH_WEIGHTS"
STAGE_SECTIONS = ("synth", "manifest", "faces", "features", "labels", "index", "transcribe", "video_features")
TOP_KEYS = {"name", "description", "reproduces", "weights", "data_root", "out", "train", "challenge", "pipeline",
            *STAGE_SECTIONS}
PIPELINE_DEFAULTS = {"parallel": 2, "features_parallel": 1, "min_fraction": 0.1, "timelines": 4, "faces": "auto",
                     "exp_id": None}
# A block subprocess logs warnings only: the pipeline prints one header per step, and the stage's
# own summary lines and progress bars still show.
_QUIET_CLI = ("import logging, sys; logging.basicConfig(level=logging.WARNING); "
              "from bah import cli; sys.exit(cli.main(sys.argv[1:]))")

# The built-in synthetic demo. Sizes measured on the shared 2-core machine: the whole run takes
# about 3 minutes there (synth ~55 s, faces ~37 s with 2 processes, features ~11 s, training ~45 s).
DEMO_CONFIG: Dict[str, Any] = {
    "name": "demo",
    "description": "synthetic BAH-layout dataset -> faces -> landmarks + logmel + MiniLM text -> LFAN",
    "reproduces": "none (synthetic data: tests the software, never a paper number)",
    "weights": [],
    # Some of the real release's hard cases (docs/synth.md); the total duration stays 48 x 8 s.
    "synth": {"subjects": 16, "videos_per_subject": 3, "fps": 15, "seconds": 8.0, "seed": 0,
              "width": 640, "height": 480, "workers": 2,
              "seconds_jitter": 0.5, "long_videos": 1, "long_seconds": 65.0, "vfr": 0.25, "small_faces": 0.15,
              "rotated": 1, "silences": 1, "no_frame_annotation": 1, "overruns": 1},
    "manifest": {"workers": 2},
    "faces": {"size": 64, "detect_every": 5},
    "features": {"extractors": ["landmarks", "logmel", "bert"], "text_model": "minilm",
                 "text_alignment": "timestamps", "device": "cpu"},
    "labels": {"source": "annotation"},
    "index": {},
    "train": {"model_name": "LFAN", "modality": f"landmarks+logmel+bert+{LABEL}", "window_length": 60,
              "hop_length": 20, "train_batch_size": 8, "eval_batch_size": 1, "num_workers": 0,
              "opt__name_optimizer": "ADAM", "opt__lr": 0.001, "opt__lr_scheduler": False,
              "num_epochs": 12, "min_num_epochs": 12, "early_stopping": 0, "seed": 0, "device": "cpu",
              "case_best_model": "FRAMES_VOTE"},
    "pipeline": {"parallel": 2, "min_fraction": 0.1, "timelines": 4},
}
# `--quick`: the same pipeline on a tiny dataset (about a minute); thresholds are not expected.
QUICK_OVERRIDES: Dict[str, Any] = {
    "name": "demo-quick",
    "synth": {"subjects": 6, "videos_per_subject": 2, "fps": 10, "seconds": 4.0, "long_seconds": 12.0},
    "train": {"window_length": 20, "hop_length": 10, "num_epochs": 4, "min_num_epochs": 4},
    "pipeline": {"timelines": 2},
}


class PipelineError(RuntimeError):
    """A step that failed; the message names it and where to look."""


class RunMismatchError(PipelineError):
    """The training run of this name was made with other settings."""


class MissingWeightsError(PipelineError):
    """A weight file named by the configuration is not where the configuration says."""


# --------------------------------------------------------------------------- configuration
def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_pipeline_config(path: Path) -> Dict[str, Any]:
    raw = read_yaml(path, ConfigError, what="pipeline config")
    validate(raw, str(path))
    return raw


def is_video_level(cfg: Mapping[str, Any]) -> bool:
    """A ``bah fit-video`` recipe (a ``challenge:`` section) rather than a trainer configuration."""
    return cfg.get("challenge") is not None


def is_synthetic(cfg: Mapping[str, Any]) -> bool:
    """``synth: {}`` asks for the synthetic set with ``bah synth``'s defaults."""
    return cfg.get("synth") is not None


def validate(cfg: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(cfg) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {unknown}; known: {sorted(TOP_KEYS)}")
    for key in (*STAGE_SECTIONS, "train", "challenge", "pipeline"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise ConfigError(f"{where}: {key!r} must be a mapping")
    bad = sorted(set(cfg.get("pipeline") or {}) - set(PIPELINE_DEFAULTS))
    if bad:
        raise ConfigError(f"{where}: unknown pipeline setting(s) {bad}; known: {sorted(PIPELINE_DEFAULTS)}")
    if is_video_level(cfg):
        frame_only = sorted(k for k in ("train", "features", "labels", "index") if cfg.get(k) is not None)
        if frame_only:
            raise ConfigError(f"{where}: a video-level recipe (challenge:) has no {frame_only} section(s): "
                              f"those belong to the frame-level trainer (train:)")
        return
    train = cfg.get("train") or {}
    if "modality" not in train or "model_name" not in train:
        raise ConfigError(f"{where}: train.model_name and train.modality are required "
                          f"(or a challenge: section for a video-level recipe)")
    if LABEL not in str(train["modality"]).split("+"):
        raise ConfigError(f"{where}: train.modality must end with +{LABEL}")
    for w in cfg.get("weights") or []:
        if not isinstance(w, dict) or "file" not in w:
            raise ConfigError(f"{where}: every weights entry needs 'file' (got {w!r})")


def _weights_dir(arg: Optional[str]) -> Path:
    return Path(arg or os.environ.get(WEIGHTS_ENV) or "weights").expanduser().absolute()


def _hf_cached(name: str) -> bool:
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    return (hub.expanduser() / f"models--{name.replace('/', '--')}").is_dir()


def resolve_weights(cfg: Dict[str, Any], weights_dir: Path, where: str) -> Dict[str, Any]:
    """Check every weight file the configuration names and put ``{weights}`` paths in place.

    A missing file stops everything before the first step, with where to put it.
    """
    missing = []
    for w in cfg.get("weights") or []:
        path = weights_dir / w["file"]
        if path.exists():
            continue
        if w.get("kind") == "hf_model" and _hf_cached(w["file"]):
            continue
        missing.append(f"  - {w['file']}: {w.get('what', 'weights')}\n"
                       f"    put it at {path}" + (f" (from {w['where']})" if w.get("where") else ""))
    if missing:
        raise MissingWeightsError(
            f"{where} needs weight files that are not there:\n" + "\n".join(missing) +
            f"\n  (the weights folder is {weights_dir}: pass --weights-dir DIR or set {WEIGHTS_ENV}; "
            "nothing is downloaded)")
    text_models = {w["file"] for w in cfg.get("weights") or [] if w.get("kind") == "hf_model"}

    def fill(v: Any) -> Any:
        if isinstance(v, str):
            if v in text_models and (weights_dir / v).is_dir():
                return str(weights_dir / v)  # a local copy wins over the (offline) hub cache
            return v.replace("{weights}", str(weights_dir))
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    return {k: (fill(v) if k in (*STAGE_SECTIONS, "train") else v) for k, v in cfg.items()}


# --------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class Context:
    cfg: Mapping[str, Any]
    out: Path
    data_root: Path
    config_file: Path
    verbose: bool = False
    force: Sequence[str] = ()  # steps to redo from scratch (--force-step)

    @property
    def work(self) -> Path:
        return self.out / "work"

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def report_dir(self) -> Path:
        return self.out / "report"

    @property
    def settings(self) -> Dict[str, Any]:
        return {**PIPELINE_DEFAULTS, **(self.cfg.get("pipeline") or {})}

    @property
    def exp_id(self) -> str:
        name = self.cfg.get("name") or (self.cfg.get("challenge") or {}).get("name") or "run"
        return str(self.settings.get("exp_id") or re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)))

    @property
    def video_level(self) -> bool:
        return is_video_level(self.cfg)

    @property
    def run_dir(self) -> Path:
        if self.video_level:
            return self.runs / self.exp_id  # the `bah fit-video` run folder
        from bah.train.run_folder import run_dir

        t = self.cfg["train"]
        return run_dir(self.runs, t.get("dataset_name", "BAH_DB"), int(t.get("fold_to_run", 0)), self.exp_id)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Context], None]
    applies: Callable[[Context], bool]
    keys: Callable[[Context], Any]  # what decides whether a finished step is still valid


STEPS: Registry[Step] = Registry("pipeline step")


def _stage(ctx: Context, command: str, *extra: str, data_root: bool = True) -> List[str]:
    argv = [command, "--config", str(ctx.config_file), "--out", str(ctx.work)]
    if data_root:
        argv += ["--data-root", str(ctx.data_root)]
    return argv + list(extra)


def _call(argv: Sequence[str], ok: Sequence[int] = (0,)) -> int:
    from bah import cli

    rc = cli.main(list(argv))
    if rc not in ok:
        raise PipelineError(f"`bah {' '.join(argv[:1])}` failed (exit status {rc}); see the messages above")
    return rc


def _parallel(ctx: Context, argv: Sequence[str], nblocks: int, block_flags=("--nblocks", "--process_block"),
              ok: Sequence[int] = (0,)) -> None:
    """One stage in ``nblocks`` processes, each on its own block of videos (one thread each)."""
    if nblocks <= 1:
        _call(argv, ok)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", _QUIET_CLI, *argv, block_flags[0], str(nblocks),
                               block_flags[1], str(b)], env=env) for b in range(nblocks)]
    codes = [p.wait() for p in procs]
    bad = [c for c in codes if c not in ok]
    if bad:
        raise PipelineError(f"`bah {argv[0]}` failed in {len(bad)} of {nblocks} blocks (exit status {bad}); "
                            f"see the messages above and {ctx.work / 'stages' / argv[0]}")


def _video_extractors(ctx: Context) -> List[Any]:
    from bah.stages.video_features import VIDEO_EXTRACTORS

    return [VIDEO_EXTRACTORS.get(n) for n in (ctx.cfg.get("video_features") or {}).get("extractors") or ()]


def _needs_faces(ctx: Context) -> bool:
    mode = ctx.settings.get("faces", "auto")
    if mode != "auto":
        return bool(mode)
    if ctx.video_level:  # face-dynamics reads the face stage's records
        return any(ex.modality == "vision" for ex in _video_extractors(ctx))
    mods = set(str(ctx.cfg["train"]["modality"]).split("+"))
    extractors = set((ctx.cfg.get("features") or {}).get("extractors") or ())
    from bah.stages.features import EXTRACTORS

    # the vision extractors read the face stage's output
    return "video" in mods or any(EXTRACTORS.get(e).modality == "vision" for e in extractors if e in EXTRACTORS)


def _step_synth(ctx: Context) -> None:
    from bah import cli

    root = ctx.data_root
    started = ctx.out / "pipeline" / "synth-root.json"  # this pipeline began generating here (resume)
    ours = (root / ".synth").is_dir() or _read_marker(started).get("data_root") == str(root)
    if root.is_dir() and any(root.iterdir()) and not ours:
        # never write synthetic files into a real dataset passed as --data-root by mistake
        raise PipelineError(f"{root} holds files that `bah synth` did not write; the demo generates its "
                            f"dataset into an empty folder (or one it generated before)")
    write_json(started, {"data_root": str(root)})

    rc = cli.main(["synth", "--config", str(ctx.config_file), "--out", str(ctx.data_root)])
    if rc != 0:
        raise PipelineError(f"bah synth failed (exit status {rc}); failed videos: {ctx.data_root / '.synth'}")


def _step_manifest(ctx: Context) -> None:
    _call(_stage(ctx, "manifest"), ok=(0, 1))  # 1 = some videos unreadable: listed, left out later


def _step_faces(ctx: Context) -> None:
    # exit status 1 = some videos failed: they are listed and the index leaves them out
    _parallel(ctx, _stage(ctx, "faces", "--no-progress"), int(ctx.settings["parallel"]), ok=(0, 1))


def _step_features(ctx: Context) -> None:
    # one process by default: starting torch + the text model in each costs more than the
    # light extractors of the demo; vggish/ir50 on a CPU are worth `pipeline.features_parallel: 2`
    # exit status 1 = some videos failed, as for faces
    _parallel(ctx, _stage(ctx, "features"), int(ctx.settings["features_parallel"]), ok=(0, 1))


def _needs_transcripts(ctx: Context) -> bool:
    """Recognised words are needed by the speech-timing extractors, by text extractors told to use
    ASR, and by ``challenge.text_source: transcripts``; the release's own transcripts stay the
    default text, so nothing else transcribes."""
    if not ctx.video_level:
        return False
    vf = ctx.cfg.get("video_features") or {}
    asr_text = vf.get("text_source") == "asr"
    return (ctx.cfg["challenge"].get("text_source") == "transcripts"
            or any(ex.modality == "speech" or (asr_text and ex.modality == "text") for ex in _video_extractors(ctx)))


def _step_transcribe(ctx: Context) -> None:
    # one recogniser per process and block: both cores busy; 1 = some videos failed (listed)
    _parallel(ctx, _stage(ctx, "transcribe", "--no-progress"), int(ctx.settings["parallel"]), ok=(0, 1))


def _step_video_features(ctx: Context) -> None:
    # 1 = some videos failed: listed in the stage's failure files, named again by fit-video
    _parallel(ctx, _stage(ctx, "video-features", "--no-progress"), int(ctx.settings["features_parallel"]),
              ok=(0, 1))


def _step_fit_video(ctx: Context) -> None:
    argv = ["fit-video", "--config", str(ctx.config_file), "--data-root", str(ctx.data_root),
            "--work", str(ctx.work), "--out", str(ctx.run_dir)]
    if _call(argv, ok=(0, 1)) == 1:
        log.warning("fit-video: some videos were left out (listed in %s)", ctx.run_dir / "failures.json")


def _step_labels(ctx: Context) -> None:
    rc = _call(_stage(ctx, "labels", "--no-progress"), ok=(0, 1))
    if rc == 1:
        log.warning("labels: some videos failed (listed in %s); the index leaves them out",
                    ctx.work / "stages" / "labels")


def _step_index(ctx: Context) -> None:
    _call(_stage(ctx, "index", data_root=False))


def train_argv(ctx: Context, resume: bool) -> List[str]:
    t = dict(ctx.cfg["train"])
    t.update({"dataset_path": str(ctx.work), "output_root": str(ctx.runs), "exp_id": ctx.exp_id,
              "mode": "TRAINING", "resume": resume})
    argv: List[str] = []
    for k, v in t.items():
        argv += [f"--{k}", str(v)]
    return argv


def _step_train(ctx: Context) -> None:
    from bah.train.run_folder import RunFolder
    from bah.train import trainer as train_cli
    from bah.train.options import parse_options

    run = RunFolder(ctx.run_dir)
    retrain = "train" in ctx.force
    try:
        o = parse_options(train_argv(ctx, False) + ["--verbose", "False"])
    except Exception as exc:
        raise PipelineError(f"train: {exc}") from exc
    changed = _changed_options(run.path / "config.yml", o, ctx.cfg["train"]) if run.path.is_dir() else {}
    if changed and not retrain:
        listing = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed)
        raise RunMismatchError(f"the run {run.path} was trained with other settings ({listing}); set "
                            f"pipeline.exp_id to start a new run, or pass --force-step train to train this one again")
    if run.finished and not retrain:
        print(f"  training run {run.path} is complete: reusing it", flush=True)
        return
    resume = run.last.exists() and not retrain
    if resume:
        print(f"  resuming the interrupted run from {run.last}", flush=True)
    argv = train_argv(ctx, resume) + (["--force", "True"] if retrain else [])
    try:
        o = parse_options(argv + ["--verbose", "False"])
        train_cli.train(o, argv, prog="bah run-config")
    except Exception as exc:  # options, data, checkpoint errors all stop the pipeline with the message
        raise PipelineError(f"training failed: {exc}") from exc


def _changed_options(config_yml: Path, o: Any, train: Mapping[str, Any]):
    """Settings of ``train`` that differ from a previous run's ``config.yml`` (both parsed alike)."""
    if not config_yml.is_file():
        return []
    try:
        old = yaml.safe_load(config_yml.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    new = o.to_dict()
    return [(k, old.get(k), new.get(k)) for k in train if k in new and k in old and old[k] != new[k]]


def _step_report(ctx: Context) -> None:
    if ctx.video_level:
        _video_report(ctx)
        return
    from bah.report.document import write_report

    s = ctx.settings
    write_report(ctx.run_dir, ctx.report_dir, n_timelines=int(s["timelines"]), min_fraction=float(s["min_fraction"]),
                 title=f"{ctx.cfg.get('name', 'run')}: A/H recognition report",
                 extra={"pipeline": ctx.cfg.get("name"), "reproduces": ctx.cfg.get("reproduces"),
                        "data_root": str(ctx.data_root), "pipeline_config": str(ctx.config_file)})


def _video_report(ctx: Context) -> None:
    """``report/report.md`` (the run's summary, which withholds test numbers from a run selected on
    test), the threshold curve next to it, and ``metrics.json``."""
    from bah.apps.challenge.report import read_run, summary_markdown
    from bah.core.files import write_bytes, write_text

    try:
        run = read_run(ctx.run_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise PipelineError(f"report: {exc}") from exc
    dest = ctx.report_dir
    lines = [summary_markdown(run).rstrip("\n"), "",
             f"- recipe: {ctx.cfg['challenge'].get('mirrors') or run['name']}",
             f"- dataset: {ctx.data_root}; run folder: {ctx.run_dir}; pipeline configuration: {ctx.config_file}"]
    curve = ctx.run_dir / str(run.get("threshold_curve") or "threshold-curve.png")
    if curve.is_file():
        write_bytes(dest / curve.name, curve.read_bytes())
        lines += ["", f"![macro F1 against the threshold]({curve.name})"]
    write_text(dest / "report.md", "\n".join(lines) + "\n")
    test = run["metrics"].get("test") or {}
    write_json(dest / "metrics.json", {"level": "video", "name": run["name"], "threshold": run["threshold"],
                                       "calibration": run["calibration"]["mode"], "selection": run["selection"],
                                       "metrics": {"selection": run["metrics"]["selection"], "test": test}})


def _section(name: str) -> Callable[[Context], Any]:
    return lambda ctx: {name: ctx.cfg.get(name), "data_root": str(ctx.data_root), "work": str(ctx.work)}


def _frame(ctx: Context) -> bool:
    return not ctx.video_level


for _s in (
    Step("synth", _step_synth, lambda c: is_synthetic(c.cfg), lambda c: {"synth": c.cfg.get("synth")}),
    Step("manifest", _step_manifest, lambda c: True, _section("manifest")),
    Step("faces", _step_faces, _needs_faces, _section("faces")),
    Step("transcribe", _step_transcribe, _needs_transcripts, _section("transcribe")),
    Step("video-features", _step_video_features,
         lambda c: c.video_level and bool((c.cfg.get("video_features") or {}).get("extractors")),
         _section("video_features")),
    Step("features", _step_features, lambda c: _frame(c) and bool((c.cfg.get("features") or {}).get("extractors")),
         _section("features")),
    Step("labels", _step_labels, _frame, _section("labels")),
    Step("index", _step_index, _frame, _section("index")),
    Step("train", _step_train, _frame, lambda c: {"train": c.cfg["train"], "exp_id": c.exp_id}),
    Step("fit-video", _step_fit_video, lambda c: c.video_level,
         lambda c: {"challenge": c.cfg.get("challenge"), "run": str(c.run_dir)}),
    Step("report", _step_report, lambda c: True, lambda c: {"pipeline": c.settings, "run": str(c.run_dir)}),
):
    STEPS.register(_s.name, _s)


# --------------------------------------------------------------------------- running
def _marker(ctx: Context, step: str) -> Path:
    return ctx.out / "pipeline" / "steps" / f"{step}.json"


def _plan(ctx: Context) -> List[str]:
    return [n for n in STEPS.ordered() if STEPS.get(n).applies(ctx)]


def plan_steps(cfg: Mapping[str, Any]) -> List[str]:
    """The steps a configuration runs, in order (nothing is run or written)."""
    here = Path(".").absolute()
    return _plan(Context(cfg=complete_video_recipe(cfg), out=here, data_root=here, config_file=here / "pipeline.yaml"))


def _steps_hash(ctx: Context, names: Sequence[str]) -> str:
    # a step is only as fresh as the steps before it: their settings are part of its key
    return config_hash([STEPS.get(n).keys(ctx) for n in names])


def run_pipeline(cfg: Mapping[str, Any], out: Path, data_root: Optional[Path] = None, verbose: bool = False,
                 force: Sequence[str] = ()) -> Dict[str, Any]:
    """Run every step that applies, skipping finished ones; returns timings and the report."""
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    data_root = Path(data_root).absolute() if data_root else out / "data"
    config_file = out / "pipeline.yaml"
    cfg = complete_video_recipe(cfg)
    stage_cfg = {k: v for k, v in cfg.items() if k in STAGE_SECTIONS}  # what the stage commands read
    write_yaml(config_file, {**cfg, **stage_cfg, "data_root": str(data_root), "out": str(out / "work")})
    if is_video_level(cfg):
        _check_video_sections(config_file)
    ctx = Context(cfg=cfg, out=out, data_root=data_root, config_file=config_file, verbose=verbose,
                  force=tuple(force))
    todo = _plan(ctx)
    timings: Dict[str, Any] = {}
    root = logging.getLogger()
    t_all = time.perf_counter()
    upstream_ran = False
    for k, name in enumerate(todo, 1):
        step = STEPS.get(name)
        key = _steps_hash(ctx, todo[:k])
        marker = _marker(ctx, name)
        done = _read_marker(marker)
        # a step after one that ran this time runs too: its inputs may have changed (the stages
        # still skip what is complete, and a finished training run is reused)
        if done.get("hash") == key and name not in force and not upstream_ran:
            print(f"[{k}/{len(todo)}] {name}: already complete ({done.get('seconds', 0):.1f} s earlier), skipped",
                  flush=True)
            timings[name] = {"seconds": 0.0, "skipped": True}
            continue
        print(f"[{k}/{len(todo)}] {name} ...", flush=True)
        level = root.level
        if not verbose:
            root.setLevel(logging.WARNING)  # stage chatter off; the trainer's epoch lines stay
            logging.getLogger("bah.train").setLevel(logging.INFO)
        t0 = time.perf_counter()
        try:
            step.run(ctx)
        finally:
            root.setLevel(level)
        dt = time.perf_counter() - t0
        write_json(marker, {"step": name, "hash": key, "seconds": dt, "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
        timings[name] = {"seconds": dt, "skipped": False}
        upstream_ran = True
        print(f"[{k}/{len(todo)}] {name}: done in {dt:.1f} s", flush=True)
    total = time.perf_counter() - t_all
    metrics_file = ctx.report_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    write_json(out / "pipeline" / "timings.json", {"steps": timings, "total_seconds": total})
    return {"out": out, "run_dir": ctx.run_dir, "report": ctx.report_dir / "report.md", "timings": timings,
            "total_seconds": total, "metrics": metrics}


def complete_video_recipe(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """A recipe's feature stage computes the features its learner reads (``challenge.features``)
    unless ``video_features.extractors`` says otherwise."""
    if not is_video_level(cfg):
        return cfg
    vf = dict(cfg.get("video_features") or {})
    if "extractors" not in vf:
        vf["extractors"] = list(cfg["challenge"].get("features") or [])
    return {**cfg, "video_features": vf}


def _check_video_sections(config_file: Path) -> None:
    """Every section a video-level step reads, built now: a bad setting stops the pipeline before
    its first step, not after an hour of speech recognition."""
    from bah.apps.challenge import settings  # noqa: F401  (registers the challenge section)
    from bah.core.config import load_config
    from bah.stages.speech import settings as speech_settings  # noqa: F401
    from bah.stages.video_features import base  # noqa: F401

    load_config(config_file, sections=["challenge", "video_features", "transcribe"], env={})


def _read_marker(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _print_result(res: Mapping[str, Any]) -> None:
    from bah.report.document import ANY_NAME

    m = res["metrics"]
    head = m.get("video_headline", ANY_NAME)
    rule = (m["video_decision"]["rule"] + f" (fitted on {m['video_decision']['fitted_on']})"
            if m.get("video_decision") else ANY_NAME)
    print(f"report: {res['report']}")
    print(f"run:    {res['run_dir']}")
    print(f"total:  {res['total_seconds']:.1f} s")
    if m.get("level") == "video":
        sel, test = m["metrics"]["selection"], m["metrics"]["test"]
        print(f"threshold: {m['threshold']:.4f} ({m['calibration']})")
        print(f"video macro F1 ({m['selection']['split']}, seed ensemble): {sel['ensemble']['avgf1']:.4f}")
        if "ensemble" in test:
            print(f"video macro F1 (test, seed ensemble): {test['ensemble']['avgf1']:.4f}", flush=True)
        return
    # the two headline figures are printed last, as the demo promises
    print(f"frame-level AVGF1 (test): {m['frame']['avgf1']:.4f}")
    print(f"video-level AVGF1 (test, {rule}): {m['videos'][head]['avgf1']:.4f}", flush=True)


def _apply_set(cfg: Dict[str, Any], items: Sequence[str]) -> Dict[str, Any]:
    from bah.core.config import parse_set

    over: Dict[str, Any] = {}
    for key, value in parse_set(items).items():
        node = over
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return deep_merge(cfg, over)


# --------------------------------------------------------------------------- commands
def _common_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pipeline")
    g.add_argument("--force-step", action="append", default=[], choices=STEPS.list(),
                   help="run this step again even if it is complete (repeatable; the stages still skip finished videos)")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("demo")
    g.add_argument("--quick", action="store_true", help="a tiny dataset (about a minute); used by the tests")
    _common_flags(parser)


def run_demo(args: argparse.Namespace) -> int:
    cfg = DEMO_CONFIG
    if args.quick:
        cfg = deep_merge(cfg, QUICK_OVERRIDES)
    if args.config:
        cfg = deep_merge(cfg, load_pipeline_config(Path(args.config)))
    cfg = _apply_set(cfg, args.set)
    validate(cfg, "demo configuration")
    out = Path(args.out or ("demo-out-quick" if args.quick else "demo-out"))
    print(f"bah demo{' --quick' if args.quick else ''}: output in {out.absolute()}", flush=True)
    return _run(cfg, out, Path(args.data_root) if args.data_root else None, args)


def add_run_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline_config", metavar="CONFIG.yaml", help="a pipeline configuration (configs/*.yaml)")
    parser.add_argument("--weights-dir", default=None,
                        help=f"folder holding the weight files the configuration names (env {WEIGHTS_ENV}; default ./weights)")
    parser.add_argument("--synthetic", action="store_true",
                        help="generate a synthetic dataset first (into --data-root, default <out>/data) with the "
                             "config's synth: section, else `bah synth`'s defaults")
    _common_flags(parser)


def run_run_config(args: argparse.Namespace) -> int:
    path = Path(args.pipeline_config)
    cfg = load_pipeline_config(path)
    if args.config:
        cfg = deep_merge(cfg, load_pipeline_config(Path(args.config)))
    if args.synthetic:
        cfg = {**cfg, "synth": cfg.get("synth") or {}}
    cfg = _apply_set(cfg, args.set)
    validate(cfg, str(path))
    try:
        cfg = resolve_weights(cfg, _weights_dir(args.weights_dir), str(path))
    except MissingWeightsError as exc:
        print(f"bah run-config: {exc}", file=sys.stderr)
        return 2
    data_root = args.data_root or cfg.get("data_root") or os.environ.get("BAH_DATA_ROOT")
    if not is_synthetic(cfg) and not data_root:
        print("bah run-config: no dataset folder: pass --data-root DIR (or set BAH_DATA_ROOT), "
              "or --synthetic", file=sys.stderr)
        return 2
    if data_root and not is_synthetic(cfg) and not Path(data_root).is_dir():
        print(f"bah run-config: dataset folder does not exist: {data_root}", file=sys.stderr)
        return 2
    out = Path(args.out or cfg.get("out") or os.environ.get("BAH_OUT") or Path("bah-out") / str(cfg.get("name", path.stem)))
    what = cfg.get("reproduces") or (cfg.get("challenge") or {}).get("mirrors", "")
    print(f"bah run-config {path}: {what}\n  output in {out.absolute()}", flush=True)
    return _run(cfg, out, Path(data_root) if data_root else None, args)


def _run(cfg: Dict[str, Any], out: Path, data_root: Optional[Path], args: argparse.Namespace) -> int:
    try:
        res = run_pipeline(cfg, out, data_root, verbose=args.verbose, force=args.force_step)
    except PipelineError as exc:
        hint = "" if isinstance(exc, RunMismatchError) else \
            "\n  (rerun the same command to resume: finished steps and videos are not redone)"
        print(f"bah: pipeline stopped: {exc}{hint}", file=sys.stderr)
        return 1
    _print_result(res)
    return 0
