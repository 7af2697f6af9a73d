"""The one parser of the trainer: every flag of the original ``main.py`` plus the new ones.

``get_args_parser()`` builds the argparse parser (groups per concern, original flag names);
``parse_options(argv)`` applies the precedence command line > ``--config FILE.yaml`` >
built-in defaults, validates every value (errors name the flag) and returns a read-only
``Options``. Effective values that differ from what was typed (the learning rate the
optimiser really uses in ``--compat``, the selection metric) are resolved here once, so the
saved configuration says what the run did (the original's ``config.yml`` did not).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from bah.core.layout import LABEL_MODALITY
from bah.core.config import ConfigError
from bah.core.files import read_yaml
from bah.train.preemption import default_resume, parse_resume

MODES = ("TRAINING", "EVALUATION")
DATASETS = ("MELD", "C-EXPR-DB", "C-EXPR-DB-CHALLENGE", "AH", "BAH_DB")
SUPERVISION = ("video_fr_sup", "video_global_sup")
EVAL_SETS = ("train", "val", "test")
AMP_DTYPES = ("float16", "bfloat16", "auto")  # auto: bfloat16 where the device has it, else float16 + GradScaler
#: --compile_model: "off" or a torch.compile mode.
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def aggregation_names() -> List[str]:
    """--case_best_model choices: the original names of the registered video aggregations."""
    from bah.metrics.video import VIDEO_AGGREGATIONS

    return sorted(VIDEO_AGGREGATIONS.get(n).original_name for n in VIDEO_AGGREGATIONS.list())


def aggregation_of(case_best_model: str) -> str:
    """Registry name (``vote``) of an original aggregation name (``FRAMES_VOTE``)."""
    from bah.metrics.video import VIDEO_AGGREGATIONS

    for n in VIDEO_AGGREGATIONS.list():
        if VIDEO_AGGREGATIONS.get(n).original_name == case_best_model:
            return n
    raise OptionsError(f"--case_best_model: unknown aggregation {case_best_model!r}; choose from {aggregation_names()}")


# --eval_metric names -> keys of bah.metrics.frame.frame_metrics, derived from the METRICS registry
# (registry name in upper case and the original's perf key), plus the paper's and the original
# constant's names for the two headline metrics. VIDEO_<name> selects on the same metric at video
# level: the --case_best_model aggregation decided by the threshold fitted on validation.
def _selectable_metrics() -> Dict[str, str]:
    from bah.metrics.selection import METRICS

    table = {"AVGF1": "avgf1", "AP_POS": "ap_legacy"}
    for name in METRICS.list():
        table[name.upper()] = name
        key = METRICS.get(name).original_key
        if key:
            table[key.upper()] = name
    return table


SELECT_METRICS = _selectable_metrics()
VIDEO_PREFIX = "VIDEO_"
# the loss is a frame-level quantity: there is no video-level loss to select on
EVAL_METRICS = {**SELECT_METRICS, **{VIDEO_PREFIX + k: v for k, v in SELECT_METRICS.items() if v != "loss"}}


def selection_key(eval_metric: str) -> str:
    """Key of the flat scores (``bah.metrics.flatten_metrics``) an --eval_metric name selects on."""
    if eval_metric.startswith(VIDEO_PREFIX):
        return "video_decision_" + EVAL_METRICS[eval_metric]
    return "frame_" + EVAL_METRICS[eval_metric]
COMPAT_LR = 1e-3  # torch's default lr, what the original's optimiser factory really used (spec §5.2)
ORIGINAL_MODELS = ("LFAN", "CAN", "JMT", "MT")


class OptionsError(ConfigError):
    """A flag value that cannot be used; the message names the flag."""


class Options(argparse.Namespace):
    """A parsed, validated configuration; attribute assignment is refused after parsing."""

    _frozen = False

    def freeze(self) -> "Options":
        object.__setattr__(self, "_frozen", True)
        return self

    def __setattr__(self, key: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError(f"options are read-only after parsing (tried to set {key!r})")
        super().__setattr__(key, value)

    def to_dict(self) -> Dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(self).items()) if not k.startswith("_")}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=True)

    @property
    def feature_modalities(self) -> List[str]:
        """Input modalities in command-line order (the order matters: LFAN's leader is the first)."""
        return [m for m in self.modality.split("+") if m != LABEL_MODALITY]


def str2bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    low = str(v).strip().lower()
    if low in ("true", "1", "yes", "y", "on"):
        return True
    if low in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {v!r}")


def null_str(v: Any) -> Optional[str]:
    return None if v in (None, "", "None", "none", "null") else str(v)


def model_names() -> List[str]:
    try:
        from bah.models import MODELS  # imported lazily: parsing must not need torch models

        names = MODELS.list()
        if names:
            return names
    except ImportError:
        pass
    return list(ORIGINAL_MODELS)


def optimizer_names() -> List[str]:
    from bah.train.optim import OPTIMIZERS

    return OPTIMIZERS.list()


def scheduler_names() -> List[str]:
    from bah.train.optim import SCHEDULERS

    return SCHEDULERS.list()


def _upper(v: str) -> str:
    return str(v).upper()


# Defaults are the original's default_config values (what its runs used: its argparse defaults
# lost to them), except --opt__mode (None: follow the selection metric) and --cudaid (None: no GPU forced).
def get_args_parser(add_help: bool = True, include_common: bool = True) -> argparse.ArgumentParser:
    """The trainer's parser. ``include_common=False`` leaves out ``--config``/``--verbose``
    which ``bah`` adds to every subcommand itself."""
    p = argparse.ArgumentParser(prog="main.py", add_help=add_help, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Train or evaluate an A/H recogniser (flags of the original BAH main.py).")
    g = p.add_argument_group("run")
    g.add_argument("--mode", type=_upper, default="TRAINING", choices=MODES,
                   help="TRAINING trains a run; EVALUATION scores the run of --fd_exp on --eval_set")
    if include_common:
        g.add_argument("--config", default=None, metavar="FILE.yaml", help="YAML defaults (command line wins)")
        g.add_argument("--verbose", type=str2bool, default=True, help="also log to stdout")
    g.add_argument("--compat", type=str2bool, nargs="?", const=True, default=False,
                   help="reproduce the original's behaviour (lr 1e-3, padded frames scored, AP_POS selection, ...); "
                   "in EVALUATION mode it defaults to the run's own setting (True for a run of the original trainer)")
    g.add_argument("--no-compat", dest="compat", action="store_false", default=argparse.SUPPRESS,
                   help="same as --compat False")
    g.add_argument("--exp_id", default=None, help="names the run folder id_<exp_id> (default: a timestamp)")
    g.add_argument("--output_root", default=None, help="runs go to <output_root>/<dataset>/fold-<k>/id_<exp_id> "
                   "(default $BAH_RUNS or ./exps; never inside the package)")
    g.add_argument("--force", type=str2bool, nargs="?", const=True, default=False,
                   help="overwrite a finished run with the same --exp_id")
    g.add_argument("--seed", type=int, default=0, help="seed of every random generator")
    g.add_argument("--cudaid", default=None, help="GPU index: the same as --device cuda:<cudaid>")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    g.add_argument("--deterministic", type=str2bool, default=True, help="deterministic cuDNN kernels")

    g = p.add_argument_group("data")
    g.add_argument("--dataset_name", default="BAH_DB", choices=DATASETS,
                   help="only BAH_DB is supported (the other names are the original's other datasets)")
    g.add_argument("--dataset_path", default=None, help="folder holding dataset_info.pkl and features/compacted_48 "
                   "(env BAH_OUT)")
    g.add_argument("--split_dir", default=None, help="folder with {train,val,test}.txt (id,label,...); default: the "
                   "splits inside dataset_info.pkl")
    g.add_argument("--load_path", default=None, help="folder of pretrained weights (res50_ir_0.887.pth, vggish.pth)")
    g.add_argument("--save_path", default="", help="folder of the run folders: the same as --output_root")
    g.add_argument("--visual_backbone_path", type=null_str, default=None,
                   help="folder of a BAH-finetuned face backbone (mini_config.yml + model.pt); None = IR-50")
    g.add_argument("--modality", default=f"video+vggish+bert+{LABEL_MODALITY}", help="'+'-joined, order matters")
    g.add_argument("--train_p", type=float, default=100.0, help="percent of training videos kept (stratified)")
    g.add_argument("--valid_p", type=float, default=100.0, help="percent of validation videos kept (stratified)")
    g.add_argument("--test_p", type=float, default=100.0, help="percent of test videos kept (stratified)")
    g.add_argument("--num_folds", type=int, default=1, help="number of folds (bounds --fold_to_run)")
    g.add_argument("--fold_to_run", type=int, default=0, help="fold of the split to train on")
    g.add_argument("--window_length", type=int, default=300, help="training window in frames (also the padding target)")
    g.add_argument("--hop_length", type=int, default=200, help="window stride in frames")
    g.add_argument("--train_batch_size", type=int, default=16, help="windows per training batch")
    g.add_argument("--eval_batch_size", type=int, default=1, help="videos per evaluation batch")
    g.add_argument("--num_workers", type=int, default=6, help="data-loading worker processes")
    g.add_argument("--calc_mean_std", type=str2bool, default=True, help="normalise feature modalities by train statistics")
    g.add_argument("--stats_cache", default=None, help="folder of the normalisation-stats cache (default: dataset_path)")
    g.add_argument("--face_resize", type=int, default=48, help="faces are resized to this size (px)")
    g.add_argument("--face_crop", type=int, default=40, help="then cropped to this size (random in training)")
    g.add_argument("--face_cache", default=None,
                   help="folder where faces stored at another size are kept resized to --face_resize, built once "
                        "(default: <stats_cache or dataset_path>/face-cache); 'off' resizes every window instead")
    g.add_argument("--emotion", default="LATER", help="original flag for other datasets: only LATER is accepted")
    g.add_argument("--time_delay", type=float, default=0.0, help="label delay in seconds: only 0 is supported")
    g.add_argument("--use_other_class", type=str2bool, default=False, help="C-EXPR-DB only: must be False for BAH")
    g.add_argument("--train_supervision_type", default="video_fr_sup", choices=SUPERVISION,
                   help="video_fr_sup: frame labels; video_global_sup: the window's max label on every frame")

    g = p.add_argument_group("model")
    g.add_argument("--model_name", default="LFAN", help="fusion model (a name of bah.models.MODELS)")
    g.add_argument("--num_heads", type=int, default=2, help="attention heads")
    g.add_argument("--modal_dim", type=int, default=32, help="per-modality width of the fusion")
    g.add_argument("--tcn_kernel_size", type=int, default=5, help="TCN kernel size")
    g.add_argument("--use_pretrained_w", type=str2bool, default=False,
                   help="LFAN only: start from <load_path>/<pretrained_subpath> (head re-initialised)")
    g.add_argument("--pretrained_subpath", default="", help="run folder under --load_path for --use_pretrained_w")

    g = p.add_argument_group("optimiser")
    g.add_argument("--opt__name_optimizer", type=_upper, default="SGD", help="SGD or ADAM")
    g.add_argument("--opt__lr", type=float, default=0.001, help="learning rate (--compat: 1e-3, as the original)")
    g.add_argument("--opt__momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--opt__dampening", type=float, default=0.0, help="SGD dampening")
    g.add_argument("--opt__nesterov", type=str2bool, default=True, help="SGD Nesterov momentum")
    g.add_argument("--opt__weight_decay", type=float, default=1e-4, help="L2 weight decay")
    g.add_argument("--opt__beta1", type=float, default=0.9, help="Adam beta1")
    g.add_argument("--opt__beta2", type=float, default=0.999, help="Adam beta2")
    g.add_argument("--opt__eps_adam", type=float, default=1e-8, help="Adam epsilon")
    g.add_argument("--opt__amsgrad", type=str2bool, default=False, help="Adam AMSGrad")
    g.add_argument("--opt__clip_grad", type=float, default=0.0, help="max grad norm; 0 = off")

    g = p.add_argument_group("scheduler")
    g.add_argument("--opt__lr_scheduler", type=str2bool, default=True, help="False keeps the lr constant")
    g.add_argument("--opt__name_lr_scheduler", type=_upper, default="MYSTEP", help="learning-rate schedule")
    g.add_argument("--opt__gamma", type=float, default=0.1, help="STEP/MYSTEP decay factor")
    g.add_argument("--opt__step_size", type=int, default=40, help="STEP/MYSTEP epochs per decay")
    g.add_argument("--opt__last_epoch", type=int, default=-1, help="passed to the scheduler")
    g.add_argument("--opt__min_lr", type=float, default=1e-7, help="lr floor")
    g.add_argument("--opt__t_max", type=float, default=100, help="COSINE period in epochs")
    g.add_argument("--opt__mode", type=_upper, default=None, choices=("MIN", "MAX"),
                   help="PLATEAU/MYWARMUP: MAX = the validation metric should rise, MIN = fall (default: the "
                   "direction of --eval_metric)")
    g.add_argument("--opt__factor", type=float, default=0.5, help="PLATEAU/MYWARMUP decay factor")
    g.add_argument("--opt__patience", type=int, default=10, help="PLATEAU/MYWARMUP epochs without improvement")
    g.add_argument("--opt__milestones", default="30,60,90", help="MULTISTEP epochs, comma-separated")
    g.add_argument("--opt__coef", type=float, default=0.5, help="MYCOSINE amplitude")
    g.add_argument("--opt__warmup_epochs", type=int, default=None, help="MYWARMUP length (default --min_num_epochs)")
    g.add_argument("--opt__gradual_release", type=int, default=1, help="release the frozen face backbone in groups")
    g.add_argument("--opt__release_count", type=int, default=3, help="number of backbone groups")
    g.add_argument("--opt__milestone", default="0", help="epochs at which backbone groups are released")
    g.add_argument("--opt__load_best_at_each_epoch", type=str2bool, default=False,
                   help="after an epoch that does not improve, go back to the best weights so far")

    g = p.add_argument_group("training")
    g.add_argument("--num_epochs", type=int, default=100, help="maximum number of epochs")
    g.add_argument("--min_num_epochs", type=int, default=5,
                   help="never stop early before this many epochs (also the MYWARMUP length)")
    g.add_argument("--early_stopping", type=int, default=50,
                   help="patience: stop after this many epochs without improvement, counted from the first epoch "
                   "(0 = off)")
    g.add_argument("--amp", type=str2bool, default=False, help="mixed precision")
    g.add_argument("--amp_dtype", default="auto", choices=AMP_DTYPES,
                   help="mixed-precision dtype; auto: bfloat16 where the device has it (measured faster than float16 "
                        "for every model on an H200, and no loss scaling), else float16 + GradScaler; --compat: float16")
    g.add_argument("--eval_metric", type=_upper, default=None, choices=sorted(EVAL_METRICS),
                   help="validation metric for model selection (default AVGF1; --compat AP_POS); VIDEO_<metric> "
                   "selects on the video-level metric of --case_best_model with its threshold fitted on validation")
    g.add_argument("--resume", type=parse_resume, default=default_resume(), metavar="{true,false,auto}",
                   help="continue the run from checkpoints/last.pth; auto: if it exists, else start "
                        "(default auto inside a SLURM job, else false)")
    g.add_argument("--metrics", default="nrmse", help="original flag for regression: only nrmse is accepted; use "
                   "--eval_metric")
    g.add_argument("--save_plot", type=str2bool, default=True, help="draw learning curves and confusion matrices")

    g = p.add_argument_group("speed", "how fast, not what: none of these changes the numbers beyond float rounding")
    g.add_argument("--channels_last", type=str2bool, default=True,
                   help="face backbone in channels-last memory format on CUDA (faster convolutions)")
    g.add_argument("--compile", type=str2bool, nargs="?", const=True, default=False,
                   help="torch.compile the face backbone (minutes of compilation at start-up)")
    g.add_argument("--compile_model", default="off", choices=COMPILE_MODES,
                   help="torch.compile the whole model for the training steps (windows have one static shape; "
                        "evaluation stays eager): 'default' fuses operators, 'reduce-overhead' also replays each "
                        "step as a CUDA graph. Off until measured (bench/gpu.py)")
    g.add_argument("--pin_memory", type=str2bool, default=True, help="page-locked loader batches on CUDA")
    g.add_argument("--persistent_workers", type=str2bool, default=True,
                   help="keep the loader workers between epochs instead of re-forking them")
    g.add_argument("--log_every", type=int, default=50,
                   help="read the running training loss every N steps (each read waits for the device)")

    g = p.add_argument_group("evaluation mode")
    g.add_argument("--fd_exp", default=None, help="run folder to evaluate (or a released best-model/ folder)")
    g.add_argument("--eval_set", default="test", choices=EVAL_SETS, help="split scored in EVALUATION mode")
    g.add_argument("--case_best_model", type=_upper, default="FRAMES_AVG_LOGITS", choices=aggregation_names(),
                   help="video aggregation of the run's video decision (its threshold is fitted on validation and "
                   "stored in the run); with --eval_metric VIDEO_<metric> it also selects the best epoch")
    g.add_argument("--target_ds_name", default=None, help="original cross-dataset evaluation: only BAH_DB (or unset)")
    return p


def _dests(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    """dest -> its first action (``--compat`` before ``--no-compat``)."""
    out: Dict[str, argparse.Action] = {}
    for a in parser._actions:
        if a.dest != "help":
            out.setdefault(a.dest, a)
    return out


def given_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> frozenset:
    """The dests typed on the command line ``argv`` (whatever their value, defaults included)."""
    saved = [(a, a.default) for a in parser._actions]
    saved_defaults = dict(parser._defaults)
    try:
        for a in parser._actions:
            a.default = argparse.SUPPRESS
        parser._defaults.clear()
        ns, _ = parser.parse_known_args(list(argv))
    finally:
        for a, d in saved:
            a.default = d
        parser._defaults.update(saved_defaults)
    return frozenset(vars(ns))


def _flag(dest: str) -> str:
    return "--" + dest


def load_yaml_defaults(path: os.PathLike, parser: argparse.ArgumentParser) -> Dict[str, Any]:
    """Read a YAML mapping of flag names (with or without '--') to default values."""
    path = Path(path)
    raw = read_yaml(path, OptionsError, what="--config: file", name=f"--config {path}")
    if "steps" in raw or "name" in raw:
        raise OptionsError(f"--config {path}: this is a pipeline configuration (it has {'steps' if 'steps' in raw else 'name'}:); "
                           f"run it with `bah run-config {path}`. The trainer's --config takes a flat mapping of its "
                           f"flags (e.g. model_name: LFAN)")
    actions = _dests(parser)
    out: Dict[str, Any] = {}
    for key, value in raw.items():
        dest = str(key).lstrip("-").replace("-", "_")
        if dest not in actions:
            raise OptionsError(f"--config {path}: unknown setting {key!r}")
        act = actions[dest]
        if value is not None and act.type is not None and not isinstance(value, (list, dict)):
            try:
                value = act.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise OptionsError(f"--config {path}: {key}: {exc}") from None
        if act.choices is not None and value is not None and value not in act.choices:
            raise OptionsError(f"--config {path}: {key}={value!r} is not one of {list(act.choices)}")
        out[dest] = value
    return out


def parse_options(argv: Optional[Sequence[str]] = None, parser: Optional[argparse.ArgumentParser] = None,
                  namespace: Optional[argparse.Namespace] = None) -> Options:
    """Parse, apply YAML defaults, validate and freeze."""
    parser = parser or get_args_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if namespace is None:
        pre, _ = parser.parse_known_args(argv)
    else:
        pre = namespace
    cfg = getattr(pre, "config", None)
    if cfg:
        parser.set_defaults(**load_yaml_defaults(cfg, parser))
    ns = parser.parse_args(argv, namespace=Options()) if namespace is None else _copy(namespace, Options())
    if namespace is None:
        ns._given = given_dests(parser, argv)
    elif cfg:  # bah train: YAML fills what the command line did not give
        for k, v in load_yaml_defaults(cfg, parser).items():
            if k not in ns._given:
                setattr(ns, k, v)
    ns.cmdline = " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    validate(ns)
    return ns.freeze()


def _copy(src: argparse.Namespace, dst: Options) -> Options:
    for k, v in vars(src).items():
        setattr(dst, k, v)
    dst._given = frozenset(getattr(src, "_given", ()))
    return dst


def _fail(flag: str, msg: str) -> None:
    raise OptionsError(f"{_flag(flag)}: {msg}")


def validate(o: Options) -> None:
    """Check every value and resolve the effective ones (lr, selection metric, model name)."""
    from bah.train.optim import OPTIMIZERS, SCHEDULERS

    for name in ("train_p", "valid_p", "test_p"):
        v = getattr(o, name)
        if not 0 < v <= 100:
            _fail(name, f"must be in (0, 100], got {v}")
    mods = o.modality.split("+")
    if LABEL_MODALITY not in mods:
        _fail("modality", f"must include the label {LABEL_MODALITY!r}, got {o.modality!r}")
    feats = [m for m in mods if m != LABEL_MODALITY]
    if not feats:
        _fail("modality", "names no input modality")
    if len(set(mods)) != len(mods):
        _fail("modality", f"repeats a modality: {o.modality!r}")
    for m in feats:
        if not m or "/" in m or m.startswith("."):
            _fail("modality", f"invalid modality name {m!r}")
    known = {n.upper(): n for n in model_names()}
    if o.model_name.upper() not in known:
        _fail("model_name", f"unknown model {o.model_name!r}; choose from {sorted(known.values())}")
    o.model_name = known[o.model_name.upper()]
    if o.model_name.upper() in ("JMT", "MT") and o.compat and not ("vggish" in feats and {"video", "vision"} & set(feats)):
        _fail("modality", f"{o.model_name} needs video (or vision) and vggish in compat mode")
    for name in ("window_length", "hop_length", "train_batch_size", "eval_batch_size", "num_epochs"):
        if getattr(o, name) < 1:
            _fail(name, f"must be >= 1, got {getattr(o, name)}")
    if o.log_every < 1:
        _fail("log_every", f"must be >= 1, got {o.log_every}")
    if o.compat and o.amp_dtype == "auto":
        o.amp_dtype = "float16"  # the original's AMP
    for name in ("num_workers", "min_num_epochs", "early_stopping", "fold_to_run", "opt__patience", "seed"):
        if getattr(o, name) < 0:
            _fail(name, f"must be >= 0, got {getattr(o, name)}")
    if not 0 <= o.seed <= 2**32 - 1:
        _fail("seed", f"must be in [0, 2**32-1], got {o.seed}")
    if o.fold_to_run >= max(o.num_folds, 1):
        _fail("fold_to_run", f"{o.fold_to_run} >= --num_folds {o.num_folds}")
    # flags of the original that only served its other datasets / tasks: refused, not ignored
    if o.dataset_name != "BAH_DB":
        _fail("dataset_name", f"{o.dataset_name!r} is not supported: bah reads the BAH release only (the original's "
                              f"readers of MELD / C-EXPR-DB / AH are not part of it)")
    if o.time_delay != 0:
        _fail("time_delay", "only 0 is supported (as in the original)")
    if o.use_other_class:
        _fail("use_other_class", "must be False: BAH has two classes (the flag adds C-EXPR-DB's 'other' class)")
    if o.emotion != "LATER":
        _fail("emotion", f"{o.emotion!r}: BAH has no emotion targets (the flag served the original's other datasets); "
                         f"leave it at LATER")
    if o.metrics != "nrmse":
        _fail("metrics", f"{o.metrics!r}: the original's regression metrics do not apply to A/H; choose the selection "
                         f"metric with --eval_metric")
    if o.target_ds_name not in (None, "BAH_DB"):
        _fail("target_ds_name", f"{o.target_ds_name!r}: cross-dataset evaluation is not supported (only BAH_DB)")
    if o.cudaid is not None:
        if not str(o.cudaid).strip().isdigit():
            _fail("cudaid", f"expected a GPU index (0, 1, ...), got {o.cudaid!r}")
        dev = f"cuda:{int(o.cudaid)}"
        if o.device not in (None, dev):
            _fail("cudaid", f"{o.cudaid} contradicts --device {o.device}")
        o.device = dev
    if o.save_path:
        if o.output_root not in (None, o.save_path):
            _fail("save_path", f"{o.save_path} contradicts --output_root {o.output_root} (they name the same folder)")
        o.output_root = o.save_path
    if o.compat and o.eval_batch_size != 1:
        _fail("eval_batch_size", "must be 1 with --compat (the original asserts it)")
    if o.opt__name_optimizer not in OPTIMIZERS:
        _fail("opt__name_optimizer", f"unknown optimiser {o.opt__name_optimizer!r}; choose from {OPTIMIZERS.list()}")
    if o.opt__name_lr_scheduler not in SCHEDULERS:
        _fail("opt__name_lr_scheduler", f"unknown scheduler {o.opt__name_lr_scheduler!r}; choose from {SCHEDULERS.list()}")
    if o.opt__lr <= 0:
        _fail("opt__lr", f"must be > 0, got {o.opt__lr}")
    if o.opt__min_lr < 0 or o.opt__weight_decay < 0:
        _fail("opt__min_lr" if o.opt__min_lr < 0 else "opt__weight_decay", "must be >= 0")
    if o.opt__lr_scheduler and o.opt__name_lr_scheduler in ("STEP", "MYSTEP") and o.opt__step_size < 1:
        _fail("opt__step_size", f"must be >= 1, got {o.opt__step_size}")
    if not 0 < o.opt__gamma <= 1 and o.opt__lr_scheduler:
        _fail("opt__gamma", f"must be in (0, 1], got {o.opt__gamma}")
    try:
        o.opt__milestones = [int(x) for x in str(o.opt__milestones).replace(" ", "").split(",") if x != ""]
        o.opt__milestone = [int(x) for x in str(o.opt__milestone).replace(" ", "").split(",") if x != ""] \
            if not isinstance(o.opt__milestone, list) else o.opt__milestone
    except ValueError as exc:
        raise OptionsError(f"--opt__milestones/--opt__milestone: expected comma-separated integers ({exc})") from None
    if o.opt__milestones != sorted(o.opt__milestones):
        _fail("opt__milestones", f"must be increasing, got {o.opt__milestones}")
    if o.visual_backbone_path and not o.compat and (o.face_resize, o.face_crop) == (48, 40):
        # the ResNet backbones expect 112 px faces; the original forgot to switch (spec §3.6)
        o.face_resize, o.face_crop = 124, 112
    if o.face_crop > o.face_resize:
        _fail("face_crop", f"{o.face_crop} is larger than --face_resize {o.face_resize}")
    if o.use_pretrained_w and o.model_name.upper() != "LFAN":
        _fail("use_pretrained_w", "is only supported for LFAN (as in the original)")
    if o.mode == "EVALUATION" and not o.fd_exp:
        _fail("fd_exp", "is required with --mode EVALUATION")
    if o.exp_id is not None and ("/" in o.exp_id or o.exp_id in ("", ".", "..")):
        _fail("exp_id", f"invalid id {o.exp_id!r}")
    # effective values, recorded in config.yml and every checkpoint
    o.effective_lr = COMPAT_LR if o.compat else o.opt__lr
    o.effective_eval_metric = o.eval_metric or ("AP_POS" if o.compat else "AVGF1")
    from bah.metrics.selection import metric_spec

    higher = metric_spec(selection_key(o.effective_eval_metric)).higher_is_better
    o.effective_opt_mode = o.opt__mode or ("MAX" if higher else "MIN")
    o.pad_eval_to_window = bool(o.compat)
    o.score_padded_frames = bool(o.compat)
    o.stats_splits = ["train", "val"] if o.compat else ["train"]
    o.weight_decay_on_norm_bias = bool(o.compat)
    o.warmup_epochs = o.opt__warmup_epochs if o.opt__warmup_epochs is not None else o.min_num_epochs
    if o.dataset_path is None:
        o.dataset_path = os.environ.get("BAH_OUT")
    if o.mode == "TRAINING" and not o.dataset_path:
        _fail("dataset_path", "no dataset folder: pass --dataset_path DIR (or set BAH_OUT / dataset_path in --config)")
    if o.output_root is None:
        o.output_root = os.environ.get("BAH_RUNS") or os.path.join(os.getcwd(), "exps")
    pkg = Path(__file__).resolve().parent
    if Path(o.output_root).resolve() == pkg or pkg in Path(o.output_root).resolve().parents:
        _fail("output_root", f"must not be inside the package folder {pkg}")
