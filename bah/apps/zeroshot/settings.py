"""Settings of ``bah zeroshot`` (config section ``zeroshot``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from bah.core.config import section

__all__ = ["STAGE", "ZeroShotConfig", "LEVELS", "FRAME_MODES", "backend_kwargs"]

STAGE = "zeroshot"
LEVELS = ("video", "frame")
FRAME_MODES = ("broadcast", "window")


@section(STAGE)
@dataclass(frozen=True)
class ZeroShotConfig:
    backend: str = "fake"
    model: Optional[str] = None  # local folder (hf, hf-text) or the server's model name (openai)
    split: str = "test"
    limit: Optional[int] = None  # first N videos of the split (smoke runs)
    # prompt
    prompt: str = "td1"
    style: str = "compat"  # compat: the original's exact strings; chat: the model's chat template
    prompts_file: Optional[str] = None  # another prompts YAML (default: the packaged one)
    # visual input
    visual: str = "frames"  # frames: full video frames; faces: packed aligned faces (bah faces)
    sampler: str = "compat"  # compat: original (metadata count, 224x224); fixed: decoded timestamps
    num_frames: int = 8
    frame_size: int = 224
    # level
    level: str = "video"
    frame_mode: str = "broadcast"
    window_s: float = 4.0  # about the mean A/H segment (4.29 s)
    hop_s: float = 2.0
    # answers
    parser: str = "compat-videollava"
    unparsed: str = "abstain"  # fixed parser: class of an unreadable answer, or abstain
    # generation (local models)
    max_new_tokens: int = 10
    scores: bool = True
    answer: str = "generate"  # generate, or choice: the higher-likelihood candidate
    dtype: str = "auto"
    device: str = "auto"
    device_map: Optional[str] = None
    trust_remote_code: bool = False
    seed: int = 42
    # OpenAI-compatible server
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None  # the NAME of the variable holding the key; the key is never stored
    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 1.0
    concurrency: int = 4
    logprobs: bool = True
    top_logprobs: int = 5
    constrain: str = "none"
    video_as: str = "frames"
    # outputs
    cache: bool = True
    run_name: Optional[str] = None


def backend_kwargs(cfg: ZeroShotConfig) -> Dict[str, Any]:
    """The keywords every backend factory accepts (each ignores what it does not use)."""
    d = asdict(cfg)
    keys = ("model", "dtype", "device", "device_map", "trust_remote_code", "max_new_tokens", "scores", "answer",
            "seed", "base_url", "api_key_env", "timeout_s", "retries", "backoff_s", "concurrency", "logprobs",
            "top_logprobs", "constrain", "video_as")
    return {k: d[k] for k in keys}
