"""Any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, Ollama, TGI, LM Studio, OpenAI).

Standard library only. Frames travel as base64 JPEG ``image_url`` parts followed by one
``text`` part (the portable form); ``--video-as video_url`` sends the sampled frames as one
small MP4 (``data:video/mp4;base64,...``) in a ``video_url`` part, for servers with video
models (vLLM). Retries: 429 and 5xx and
connection errors/timeouts are retried with exponential back-off, other 4xx fail at once. The
API key is read from a named environment variable at start-up and never written anywhere.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
import random
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.apps.zeroshot.backend import BACKENDS, Answer, Backend, BackendError, BackendUnavailable, Item

log = logging.getLogger(__name__)

__all__ = ["OpenAIBackend", "CONSTRAINTS", "encode_jpeg", "encode_mp4", "first_token_scores"]

# how a server is asked to answer with one of the candidates
CONSTRAINTS = ("none", "vllm-guided", "vllm-structured")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_mp4(frames: Sequence[np.ndarray], fps: int = 1) -> bytes:
    """The sampled frames as a tiny H.264/MPEG-4 clip (even sizes, yuv420p) held in memory."""
    from bah.core.media import write_video

    h, w = frames[0].shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    buf = io.BytesIO()
    write_video(buf, (f[:h2, :w2] for f in frames), fps, threads=0)
    return buf.getvalue()


def first_token_scores(top: Sequence[Dict[str, Any]], candidates: Tuple[str, str]) -> Optional[Tuple[float, float]]:
    """Per-candidate score from the first answer token's ``top_logprobs``.

    A token counts for a candidate when it is a (case-insensitive) prefix of it and not of the
    other. A candidate with no such token gets the lowest listed log-probability (its true
    value is at most that); None when neither candidate appears.
    """
    best: List[Optional[float]] = [None, None]
    lows = []
    cands = [c.casefold() for c in candidates]
    for entry in top:
        tok = str(entry.get("token", "")).strip().casefold()
        lp = entry.get("logprob")
        if lp is None or not isinstance(lp, (int, float)) or not math.isfinite(lp):
            continue
        lows.append(float(lp))
        if not tok:
            continue
        hits = [c.startswith(tok) for c in cands]
        if hits[0] != hits[1]:
            k = 0 if hits[0] else 1
            best[k] = float(lp) if best[k] is None else max(best[k], float(lp))
    if best[0] is None and best[1] is None:
        return None
    floor = min(lows)
    return (best[0] if best[0] is not None else floor, best[1] if best[1] is not None else floor)


@BACKENDS.register("openai")
class OpenAIBackend(Backend):
    needs_frames = True
    video_prompts = False  # the server's chat template places the images; no '<video>' tag in the text

    def __init__(self, base_url: Optional[str] = None, model: Optional[str] = None, api_key_env: Optional[str] = None,
                 timeout_s: float = 60.0, retries: int = 3, backoff_s: float = 1.0, concurrency: int = 4,
                 max_new_tokens: int = 10, logprobs: bool = True, top_logprobs: int = 5, constrain: str = "none",
                 video_as: str = "frames", seed: Optional[int] = 42, jpeg_quality: int = 90, **_: Any):
        if not base_url:
            raise BackendUnavailable("the openai backend needs --base-url (e.g. http://localhost:8000/v1)")
        if not model:
            raise BackendUnavailable("the openai backend needs --model NAME (the server's model name)")
        if constrain not in CONSTRAINTS:
            raise ValueError(f"constrain {constrain!r}; choose one of {CONSTRAINTS}")
        if video_as not in ("frames", "video_url"):
            raise ValueError(f"video_as {video_as!r}; choose frames or video_url")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = None
        if api_key_env:
            self._api_key = os.environ.get(api_key_env)
            if not self._api_key:
                raise BackendUnavailable(f"environment variable {api_key_env} (API key) is not set or empty")
        self.timeout_s, self.retries, self.backoff_s = float(timeout_s), int(retries), float(backoff_s)
        self.max_concurrency = max(1, int(concurrency))
        self.max_new_tokens, self.logprobs, self.top_logprobs = int(max_new_tokens), bool(logprobs), int(top_logprobs)
        self.constrain, self.video_as, self.seed, self.jpeg_quality = constrain, video_as, seed, int(jpeg_quality)
        self.needs_frames = True

    def identity(self) -> Dict[str, Any]:
        return {"backend": "openai", "base_url": self.base_url, "model": self.model}

    def generation_params(self) -> Dict[str, Any]:
        return {"max_tokens": self.max_new_tokens, "temperature": 0, "seed": self.seed, "logprobs": self.logprobs,
                "top_logprobs": self.top_logprobs, "constrain": self.constrain, "video_as": self.video_as,
                "jpeg_quality": self.jpeg_quality}

    # ------------------------------------------------------------------ request
    def body(self, item: Item) -> Dict[str, Any]:
        parts: List[Dict[str, Any]] = []
        frames = item.frames or []
        if self.video_as == "video_url" and frames:
            url = f"data:video/mp4;base64,{base64.b64encode(encode_mp4(frames)).decode('ascii')}"
            parts.append({"type": "video_url", "video_url": {"url": url}})
        else:
            parts.extend({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(
                encode_jpeg(f, self.jpeg_quality)).decode("ascii")}} for f in frames)
        parts.append({"type": "text", "text": item.prompt.content})
        body: Dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": parts}],
                                "temperature": 0, "max_tokens": self.max_new_tokens}
        if self.seed is not None:
            body["seed"] = self.seed
        if self.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        if self.constrain == "vllm-guided":
            body["guided_choice"] = list(item.candidates)
        elif self.constrain == "vllm-structured":
            body["structured_outputs"] = {"choice": list(item.candidates)}
        return body

    def _headers(self) -> Dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            h["Authorization"] = f"Bearer {self._api_key}"
        return h

    def post(self, body: Dict[str, Any]) -> Tuple[Dict[str, Any], int]:
        """POST with bounded retries; returns (parsed JSON, attempts)."""
        data = json.dumps(body).encode("utf-8")
        last = ""
        unreachable = True
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff_s * (2 ** (attempt - 1)) * (1 + 0.1 * random.random())
                time.sleep(delay)
            req = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                try:
                    return json.loads(raw.decode("utf-8")), attempt + 1
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise BackendError(f"{self.url}: response is not JSON ({exc}): {raw[:200]!r}") from None
            except urllib.error.HTTPError as exc:
                unreachable = False
                detail = exc.read()[:300].decode("utf-8", "replace") if exc.fp else ""
                last = f"HTTP {exc.code} {exc.reason}: {detail}"
                if exc.code in (401, 403):
                    raise BackendUnavailable(f"{self.url}: {last} (check the API key variable)") from None
                if exc.code == 404:
                    raise BackendUnavailable(f"{self.url}: {last} (wrong --base-url or --model?)") from None
                if exc.code not in RETRY_STATUS:
                    raise BackendError(f"{self.url}: {last}") from None
            except (socket.timeout, TimeoutError) as exc:
                unreachable = False
                last = f"timed out after {self.timeout_s:g} s ({exc})"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                    unreachable = False
                    last = f"timed out after {self.timeout_s:g} s"
                else:
                    last = f"cannot connect ({exc.reason})"
            except (ConnectionError, OSError) as exc:
                last = f"connection failed ({exc})"
            log.warning("%s: attempt %d/%d failed: %s", self.url, attempt + 1, self.retries + 1, last)
        if unreachable:
            raise BackendUnavailable(f"{self.url}: server unreachable after {self.retries + 1} attempts: {last}")
        raise BackendError(f"{self.url}: gave up after {self.retries + 1} attempts: {last}")

    def predict(self, item: Item) -> Answer:
        t0 = time.perf_counter()
        resp, attempts = self.post(self.body(item))
        try:
            choice = resp["choices"][0]
            text = choice["message"]["content"]
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}")
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"{self.url}: malformed chat completion ({type(exc).__name__}: {exc}): "
                               f"{json.dumps(resp)[:200]}") from None
        scores = None
        lp = choice.get("logprobs") if isinstance(choice, dict) else None
        if self.logprobs and isinstance(lp, dict) and lp.get("content"):
            first = lp["content"][0] or {}
            top = list(first.get("top_logprobs") or [])
            if first.get("token") is not None:
                top.append({"token": first.get("token"), "logprob": first.get("logprob")})
            scores = first_token_scores(top, item.candidates)
        usage = resp.get("usage") or {}
        return Answer(text, scores, {"latency_s": time.perf_counter() - t0, "attempts": attempts,
                                     "prompt_tokens": usage.get("prompt_tokens"),
                                     "completion_tokens": usage.get("completion_tokens"),
                                     "finish_reason": choice.get("finish_reason"), "backend": "openai"})
