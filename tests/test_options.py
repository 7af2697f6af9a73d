"""Flag parsing of the trainer (every flag of the original main.py, spec §2.2)."""
import argparse

import pytest

from bah.train.options import COMPAT_LR, Options, OptionsError, get_args_parser, parse_options

BASE = ["--dataset_path", "/tmp/data", "--output_root", "/tmp/runs"]

# one non-default value per original flag (docs: original-training.md §2.2 + §2.4)
ORIGINAL_FLAGS = {
    "mode": "EVALUATION", "dataset_name": "MELD", "dataset_path": "/x", "load_path": "/w", "save_path": "/s",
    "visual_backbone_path": "/bb", "exp_id": "abc", "cudaid": "1", "seed": "7", "verbose": "False",
    "train_p": "50", "valid_p": "40.5", "test_p": "30", "amp": "True",
    "opt__name_optimizer": "adam", "opt__lr": "0.008", "opt__momentum": "0.8", "opt__dampening": "0.1",
    "opt__nesterov": "False", "opt__weight_decay": "0.001", "opt__beta1": "0.8", "opt__beta2": "0.99",
    "opt__eps_adam": "1e-6", "opt__amsgrad": "True", "opt__lr_scheduler": "False", "opt__name_lr_scheduler": "STEP",
    "opt__gamma": "0.9", "opt__step_size": "50", "opt__last_epoch": "3", "opt__min_lr": "1e-6", "opt__t_max": "50",
    "opt__mode": "MIN", "opt__factor": "0.2", "opt__patience": "3", "opt__gradual_release": "0",
    "opt__release_count": "2", "opt__milestone": "5,10", "opt__load_best_at_each_epoch": "True", "resume": "True",
    "modality": "vggish+bert+EXPR_continuous_label", "calc_mean_std": "False", "emotion": "valence",
    "model_name": "CAN", "num_folds": "2", "fold_to_run": "1", "use_pretrained_w": "True", "pretrained_subpath": "a/b",
    "num_heads": "4", "modal_dim": "16", "tcn_kernel_size": "3", "num_epochs": "60", "min_num_epochs": "3",
    "early_stopping": "7", "window_length": "696", "hop_length": "48", "train_batch_size": "4",
    "eval_batch_size": "2", "num_workers": "12", "time_delay": "1", "metrics": "rmse", "save_plot": "False",
    "use_other_class": "True", "train_supervision_type": "video_global_sup", "target_ds_name": "MELD",
    "eval_set": "val", "case_best_model": "FRAMES_VOTE", "fd_exp": "/r",
}
# refused with a message naming the flag (they served the original's other datasets and tasks)
REFUSED = {"dataset_name", "emotion", "metrics", "time_delay", "use_other_class", "target_ds_name"}
EXTRA = {"mode": ["--fd_exp", "/r"], "fold_to_run": ["--num_folds", "2"], "opt__mode": ["--opt__name_lr_scheduler", "PLATEAU"],
         "opt__factor": ["--opt__name_lr_scheduler", "PLATEAU"], "opt__patience": ["--opt__name_lr_scheduler", "PLATEAU"],
         "opt__t_max": ["--opt__name_lr_scheduler", "COSINE"], "use_pretrained_w": ["--model_name", "LFAN"]}


def _behaviour(flag):
    """What the rest of bah reads for ``flag``: the factories' keywords where a factory consumes
    it, the resolved option where validation turns it into another (cudaid -> device)."""
    from bah.models.factory import model_kwargs
    from bah.train.optim import optimizer_kwargs, scheduler_kwargs
    from bah.train.options import aggregation_of, selection_key

    if flag.startswith("opt__") and flag not in ("opt__gradual_release", "opt__release_count", "opt__milestone",
                                                 "opt__load_best_at_each_epoch", "opt__lr_scheduler"):
        return lambda o: (optimizer_kwargs(o), scheduler_kwargs(o))
    return {
        "opt__lr_scheduler": lambda o: scheduler_kwargs(o)["name"],
        "cudaid": lambda o: o.device,
        "save_path": lambda o: o.output_root,
        "visual_backbone_path": lambda o: (o.face_resize, o.face_crop),
        "num_heads": lambda o: model_kwargs(o), "modal_dim": lambda o: model_kwargs(o),
        "tcn_kernel_size": lambda o: model_kwargs(o),
        "case_best_model": lambda o: aggregation_of(o.case_best_model),
        "eval_metric": lambda o: selection_key(o.effective_eval_metric),
    }.get(flag, lambda o: getattr(o, flag))


@pytest.mark.parametrize("flag", sorted(ORIGINAL_FLAGS))
def test_every_original_flag_changes_behaviour_or_is_refused(flag):
    argv = (BASE if flag != "save_path" else BASE[:2]) + EXTRA.get(flag, [])
    if flag in REFUSED:
        with pytest.raises(OptionsError, match=f"--{flag}"):
            parse_options(argv + [f"--{flag}", ORIGINAL_FLAGS[flag]])
        return
    read = _behaviour(flag)
    default, changed = parse_options(argv), parse_options(argv + [f"--{flag}", ORIGINAL_FLAGS[flag]])
    assert read(changed) != read(default)


def test_every_accepted_flag_is_read_outside_the_parser():
    """A flag that only options.py mentions would be accepted and do nothing."""
    import pathlib
    import re

    import bah

    pkg = pathlib.Path(bah.__file__).parent
    source = "\n".join(f.read_text(encoding="utf-8") for f in pkg.rglob("*.py") if f.name != "options.py")
    # resolved in validation into the option the rest of bah reads
    resolved = {"cudaid": "device", "save_path": "output_root", "opt__mode": "effective_opt_mode",
                "opt__lr": "effective_lr", "eval_metric": "effective_eval_metric",
                "opt__warmup_epochs": "warmup_epochs", "config": "config", "mode": "mode"}
    for a in get_args_parser()._actions:
        if a.dest in REFUSED or a.dest == "help":
            continue
        name = resolved.get(a.dest, a.dest)
        assert re.search(rf"\.{name}\b|[\"']{name}[\"']", source), f"--{a.dest} is never read"


def test_parser_knows_every_original_flag():
    dests = {a.dest for a in get_args_parser()._actions}
    assert set(ORIGINAL_FLAGS) <= dests


def test_yaml_defaults_and_precedence(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("window_length: 64\nhop_length: 8\n--opt__lr: 0.01\n")
    o = parse_options(BASE + ["--config", str(cfg), "--hop_length", "16"])
    assert (o.window_length, o.hop_length, o.opt__lr) == (64, 16, 0.01)  # CLI > YAML > built-in
    assert o.train_batch_size == 16  # built-in default


def test_yaml_unknown_key_is_rejected(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("no_such_flag: 1\n")
    with pytest.raises(OptionsError, match="no_such_flag"):
        parse_options(BASE + ["--config", str(cfg)])


def test_effective_lr_compat_vs_default():
    assert parse_options(BASE + ["--opt__lr", "0.008"]).effective_lr == 0.008
    o = parse_options(BASE + ["--opt__lr", "0.008", "--compat"])
    assert o.effective_lr == COMPAT_LR == 1e-3
    assert o.effective_eval_metric == "AP_POS" and o.score_padded_frames and o.stats_splits == ["train", "val"]
    assert parse_options(BASE).effective_eval_metric == "AVGF1"


@pytest.mark.parametrize("argv, flag", [
    (["--modality", "video+vggish"], "--modality"),
    (["--train_p", "0"], "--train_p"),
    (["--valid_p", "101"], "--valid_p"),
    (["--model_name", "XYZ"], "--model_name"),
    (["--opt__name_optimizer", "RMSPROP"], "--opt__name_optimizer"),
    (["--opt__name_lr_scheduler", "FOO"], "--opt__name_lr_scheduler"),
    (["--time_delay", "1"], "--time_delay"),
    (["--use_other_class", "True"], "--use_other_class"),
    (["--compat", "--eval_batch_size", "2"], "--eval_batch_size"),
    (["--opt__milestones", "30,10"], "--opt__milestones"),
    (["--use_pretrained_w", "True", "--model_name", "CAN"], "--use_pretrained_w"),
    (["--fold_to_run", "1"], "--fold_to_run"),
    (["--window_length", "0"], "--window_length"),
])
def test_bad_values_fail_naming_the_flag(argv, flag):
    with pytest.raises(OptionsError, match=flag):
        parse_options(BASE + argv)


def test_bad_choice_and_bool_fail_at_parse_time(capsys):
    for argv in (["--mode", "PREDICT"], ["--amp", "maybe"], ["--train_supervision_type", "x"]):
        with pytest.raises(SystemExit):
            parse_options(BASE + argv)
        assert argv[0] in capsys.readouterr().err


def test_options_are_read_only_and_serialisable():
    o = parse_options(BASE)
    assert isinstance(o, Options)
    with pytest.raises(AttributeError):
        o.seed = 3
    assert "effective_lr" in o.to_yaml() and o.feature_modalities == ["video", "vggish", "bert"]


def test_dataset_path_from_env(monkeypatch):
    monkeypatch.setenv("BAH_OUT", "/env/out")
    assert parse_options(["--output_root", "/tmp/r"]).dataset_path == "/env/out"
    monkeypatch.delenv("BAH_OUT")
    with pytest.raises(OptionsError, match="--dataset_path"):
        parse_options(["--output_root", "/tmp/r"])


def test_bah_train_parser_does_not_clash_with_common_flags():
    from bah.cli import add_common_arguments
    from bah.train.cli import add_train_arguments

    p = argparse.ArgumentParser()
    add_common_arguments(p)
    add_train_arguments(p)  # would raise on a duplicated --config / --verbose
    ns = p.parse_args(["--window_length", "8", "--config", "x.yaml"])
    assert ns.window_length == 8 and ns.config == "x.yaml"


def _bah_train_options(argv):
    """What `bah train ARGV` resolves (bah.cli's parser for the train subcommand)."""
    from bah.cli import add_common_arguments
    from bah.train.cli import _options_from_bah, add_train_arguments

    parser = argparse.ArgumentParser(prog="bah train")
    add_common_arguments(parser)
    add_train_arguments(parser)
    return _options_from_bah(parser.parse_args(argv), "TRAINING")


@pytest.mark.parametrize("entry", ["main.py", "bah train"])
def test_typed_flags_beat_yaml_even_at_their_default(tmp_path, entry):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_epochs: 5\nseed: 3\nwindow_length: 64\n")
    # --num_epochs 100 and --seed 0 are the built-in defaults, typed on purpose
    argv = BASE + ["--config", str(cfg), "--num_epochs", "100", "--seed", "0"]
    o = parse_options(argv) if entry == "main.py" else _bah_train_options(argv)
    assert (o.num_epochs, o.seed) == (100, 0)
    assert o.window_length == 64 and o.hop_length == 200  # YAML, then the built-in default


def test_bah_train_help_shows_defaults_and_main_help_lists_every_flag(capsys):
    parser = get_args_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for a in parser._actions:
        if a.dest == "help":
            continue
        assert a.help, a.option_strings
        assert a.option_strings[0] in text
        if a.default is not argparse.SUPPRESS:
            assert f"(default: {a.default})" in " ".join(text.split()), a.option_strings[0]


def test_pipeline_config_given_to_main_py_points_to_run_config():
    import pathlib

    pipeline_yaml = pathlib.Path(__file__).resolve().parents[1] / "configs" / "video-visual.yaml"
    with pytest.raises(OptionsError, match="bah run-config"):
        parse_options(BASE + ["--config", str(pipeline_yaml)])
