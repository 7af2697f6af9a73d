"""``bah zeroshot``: parsing and wiring only; the work is in :mod:`bah.apps.zeroshot.engine`."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Dict

from bah.core.config import ConfigError
from bah.core.layout import stage_dir
from bah.apps.zeroshot.answer import PARSERS, UNPARSED_POLICIES
from bah.apps.zeroshot.backend import BACKENDS, BackendUnavailable
from bah.apps.zeroshot.frames import SAMPLERS, VISUALS
from bah.apps.zeroshot.hf_backend import ANSWER_MODES, DTYPES
from bah.apps.zeroshot.http_backend import CONSTRAINTS
from bah.apps.zeroshot.prompt import PromptError, load_prompts
from bah.apps.zeroshot.settings import FRAME_MODES, LEVELS, STAGE, ZeroShotConfig, backend_kwargs

log = logging.getLogger(__name__)

__all__ = ["add_arguments", "run", "overrides_from_args", "run_dir_of"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    book = load_prompts()
    g = parser.add_argument_group("model")
    g.add_argument("--backend", choices=BACKENDS.list(), default=None, help="which model runs (default: fake)")
    g.add_argument("--model", default=None,
                   help="hf/hf-text: a local model folder; openai: the server's model name")
    g.add_argument("--dtype", choices=DTYPES, default=None, help="local models: weight dtype (auto: fp32 on CPU)")
    g.add_argument("--device", default=None, help="local models: cpu, cuda, cuda:1 (default auto)")
    g.add_argument("--device-map", default=None, help="local models: transformers device_map (e.g. auto)")
    g.add_argument("--trust-remote-code", action="store_const", const=True, default=None,
                   help="allow model code shipped inside the model folder")
    g.add_argument("--max-new-tokens", type=int, default=None, help="answer length (10 as in the original)")
    g.add_argument("--no-scores", dest="scores", action="store_const", const=False, default=None,
                   help="local models: skip the candidate log-likelihoods (no AP)")
    g.add_argument("--answer", choices=ANSWER_MODES, default=None,
                   help="local models: generate text, or choose the likelier candidate (constrained)")
    g.add_argument("--seed", type=int, default=None)
    s = parser.add_argument_group("server (--backend openai)")
    s.add_argument("--base-url", default=None, help="e.g. http://localhost:8000/v1")
    s.add_argument("--api-key-env", default=None, metavar="VAR", help="environment variable that holds the API key")
    s.add_argument("--timeout-s", type=float, default=None, help="per-request timeout (default 60)")
    s.add_argument("--retries", type=int, default=None, help="retries on 429/5xx/timeouts (default 3)")
    s.add_argument("--backoff-s", type=float, default=None, help="first back-off delay, doubled each retry")
    s.add_argument("--concurrency", type=int, default=None, help="requests in flight (default 4)")
    s.add_argument("--no-logprobs", dest="logprobs", action="store_const", const=False, default=None,
                   help="do not ask for logprobs (no AP)")
    s.add_argument("--top-logprobs", type=int, default=None)
    s.add_argument("--constrain", choices=CONSTRAINTS, default=None,
                   help="ask the server to answer with one candidate (vLLM guided_choice / structured_outputs)")
    s.add_argument("--video-as", choices=("frames", "video_url"), default=None,
                   help="frames as image_url parts (portable) or one video_url part (vLLM video models)")
    p = parser.add_argument_group("prompt and input")
    p.add_argument("--prompt", choices=book.names(), default=None, help="prompt flag of the original (default td1)")
    p.add_argument("--style", choices=book.style_names(), default=None,
                   help="compat: the original's exact strings; chat: the model's chat template")
    p.add_argument("--prompts-file", default=None, metavar="FILE.yaml", help="another prompt file")
    p.add_argument("--split", default=None, help="split file to predict (default test)")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos")
    p.add_argument("--visual", choices=sorted(VISUALS.list()), default=None,
                   help="full video frames, or the packed aligned faces of `bah faces`")
    p.add_argument("--sampler", choices=SAMPLERS.list(), default=None,
                   help="compat: 8 frames by container metadata at 224x224; fixed: by decoded timestamps")
    p.add_argument("--num-frames", type=int, default=None)
    p.add_argument("--frame-size", type=int, default=None)
    lv = parser.add_argument_group("level and answers")
    lv.add_argument("--level", choices=LEVELS, default=None)
    lv.add_argument("--frame-mode", choices=FRAME_MODES, default=None,
                    help="broadcast the video answer to its frames, or ask per window")
    lv.add_argument("--window-s", type=float, default=None)
    lv.add_argument("--hop-s", type=float, default=None)
    lv.add_argument("--parser", choices=PARSERS.list(), default=None, help="answer -> label policy")
    lv.add_argument("--unparsed", choices=UNPARSED_POLICIES, default=None,
                    help="fixed parser: label of an unreadable answer, or abstain (left out of the metrics)")
    o = parser.add_argument_group("output")
    o.add_argument("--run-name", default=None, help="folder under <out>/stages/zeroshot (default from the settings)")
    o.add_argument("--no-cache", dest="cache", action="store_const", const=False, default=None,
                   help="ask the model again even when an answer is cached")
    o.add_argument("--no-progress", action="store_true")


def overrides_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    names = [f.name for f in ZeroShotConfig.__dataclass_fields__.values()]
    return {f"{STAGE}.{n}": getattr(args, n, None) for n in names}


def run_dir_of(out, zc: ZeroShotConfig):
    name = zc.run_name or "-".join([zc.backend, zc.prompt, zc.style, zc.level]
                                   + ([zc.frame_mode] if zc.level == "frame" else []) + [zc.split])
    return stage_dir(out, STAGE) / name


def _check(zc: ZeroShotConfig) -> None:
    if zc.backend not in BACKENDS:
        raise ConfigError(f"zeroshot.backend {zc.backend!r}; known: {BACKENDS.list()}")
    for name, value, allowed in (("level", zc.level, LEVELS), ("frame_mode", zc.frame_mode, FRAME_MODES),
                                 ("parser", zc.parser, PARSERS.list()), ("sampler", zc.sampler, SAMPLERS.list()),
                                 ("visual", zc.visual, VISUALS.list()), ("unparsed", zc.unparsed, UNPARSED_POLICIES)):
        if value not in allowed:
            raise ConfigError(f"zeroshot.{name} {value!r}; choose one of {list(allowed)}")


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args
    from bah.data import Release
    from bah.apps.zeroshot.answer import create_parser
    from bah.apps.zeroshot.backend import create_backend
    from bah.apps.zeroshot.cache import ResponseCache
    from bah.apps.zeroshot.engine import run_zeroshot

    cfg = config_from_args(args, sections=[STAGE], overrides=overrides_from_args(args))
    zc: ZeroShotConfig = cfg[STAGE]
    _check(zc)
    try:
        book = load_prompts(zc.prompts_file)
        book.get(zc.prompt)
    except PromptError as exc:
        raise ConfigError(str(exc)) from None
    release = Release(cfg.require_data_root())
    if zc.split not in release.splits:
        raise ConfigError(f"split {zc.split!r} not found under {release.root}; found: {release.splits}")
    try:
        backend = create_backend(zc.backend, **backend_kwargs(zc))
    except BackendUnavailable as exc:
        print(f"bah zeroshot: {exc}", file=sys.stderr)
        return 2
    run_dir = run_dir_of(cfg.out, zc)
    cache = ResponseCache(stage_dir(cfg.out, STAGE) / "cache.jsonl" if zc.cache else None)
    try:
        res = run_zeroshot(zc, backend, release, book, create_parser(zc.parser, zc.unparsed), cfg.out, run_dir,
                           cache, progress=not args.no_progress)
    except BackendUnavailable as exc:
        # answers already received stay in the cache; nothing is written as a result
        print(f"bah zeroshot: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    finally:
        backend.close()
    cfg.save(run_dir / "config.yaml")
    c = res.metrics["counts"]
    block = res.metrics.get(zc.level)
    print(f"zeroshot {zc.backend} prompt={zc.prompt} level={zc.level}: {c['answered']}/{c['units']} answered "
          f"({c['model_calls']} model calls, {c['cache_hits']} cached), {c['unparsed']} unparsed, "
          f"{c['skipped']} videos skipped, {c['failed_videos']} failed")
    if isinstance(block, dict):
        ref = res.metrics["references"]
        ap = block["ap"] if isinstance(block["ap"], str) else f"{block['ap']:.4f}"
        print(f"  AVGF1 {block['avgf1']:.4f}  AP {ap}  (always-0 {ref['always_0']['avgf1']:.4f}, "
              f"always-1 {ref['always_1']['avgf1']:.4f})")
    else:
        print(f"  {block}")
    print(f"  outputs: {run_dir}")
    return 1 if c["failed_videos"] else 0
