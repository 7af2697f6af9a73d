"""Local Hugging Face models given by path: video-LLMs (``hf``) and text-only causal LMs (``hf-text``).

Nothing is ever downloaded: ``local_files_only`` is always on, so ``--model`` must be a folder
saved with ``save_pretrained`` (or a snapshot copied from the hub cache). Video-LLaVA loads
through its own classes, as in the original; any other video-LLM through the generic
``AutoModelForImageTextToText`` + ``AutoProcessor``.

Scores: each candidate answer is teacher-forced after the prompt and its token
log-probabilities summed; the pair ``(ll_non, ll_amb)`` plays the role of the 2-class logits,
so AP is defined. ``answer="choice"`` answers with the higher-scoring candidate (constrained
decoding) instead of generating.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from bah.apps.zeroshot.backend import BACKENDS, Answer, Backend, BackendError, BackendUnavailable, Item

log = logging.getLogger(__name__)

__all__ = ["HFVideoBackend", "HFTextBackend", "DTYPES", "ANSWER_MODES", "model_fingerprint"]

DTYPES = ("auto", "float32", "float16", "bfloat16")
ANSWER_MODES = ("generate", "choice")


def model_fingerprint(path: Path) -> str:
    """Config contents plus weight-file sizes and times: a changed checkpoint misses the cache."""
    h = hashlib.sha256()
    for p in sorted(path.iterdir()):
        if p.suffix in (".json", ".safetensors", ".bin", ".model", ".txt", ".jinja") and p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{int(st.st_mtime)}".encode())
            if p.name == "config.json":
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


class _HFBase(Backend):
    max_concurrency = 1

    def __init__(self, model: Optional[str] = None, dtype: str = "auto", device: str = "auto",
                 device_map: Optional[str] = None, trust_remote_code: bool = False, max_new_tokens: int = 10,
                 scores: bool = True, answer: str = "generate", seed: int = 42, **_: Any):
        if not model:
            raise BackendUnavailable(f"the {self.name} backend needs --model PATH (a local model folder)")
        self.path = Path(model).expanduser()
        if not self.path.is_dir():
            raise BackendUnavailable(f"model path does not exist or is not a folder: {self.path}")
        if not (self.path / "config.json").is_file():
            raise BackendUnavailable(f"{self.path}: no config.json; --model must be a folder written by save_pretrained")
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}; choose one of {DTYPES}")
        if answer not in ANSWER_MODES:
            raise ValueError(f"answer mode {answer!r}; choose one of {ANSWER_MODES}")
        if answer == "choice" and not scores:
            raise ValueError("answer mode 'choice' needs candidate scores (do not turn scores off)")
        import torch

        self.torch = torch
        self.max_new_tokens, self.want_scores, self.answer_mode, self.seed = int(max_new_tokens), bool(scores), answer, seed
        self.trust_remote_code = bool(trust_remote_code)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.device_map = device_map
        self.dtype_name = dtype
        self.calls = 0
        self._fingerprint = model_fingerprint(self.path)
        torch.manual_seed(seed)
        try:
            self.load()
        except (OSError, ValueError, KeyError) as exc:
            raise BackendUnavailable(f"{self.path}: cannot load the model ({type(exc).__name__}: {exc})") from None
        self.model.eval()
        if device_map is None:
            self.model.to(self.device)

    name = "hf"

    def _dtype(self):
        if self.dtype_name == "auto":
            return "auto" if self.device != "cpu" else self.torch.float32
        return getattr(self.torch, self.dtype_name)

    def _load_kwargs(self) -> Dict[str, Any]:
        kw: Dict[str, Any] = {"local_files_only": True, "dtype": self._dtype(), "trust_remote_code": self.trust_remote_code}
        if self.device_map:
            kw["device_map"] = self.device_map
        return kw

    def load(self) -> None:
        raise NotImplementedError

    def identity(self) -> Dict[str, Any]:
        return {"backend": self.name, "model": str(self.path.resolve()), "fingerprint": self._fingerprint,
                "dtype": self.dtype_name}

    def generation_params(self) -> Dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "do_sample": False, "scores": self.want_scores,
                "answer": self.answer_mode, "seed": self.seed}

    def versions(self) -> Dict[str, str]:
        import transformers

        return {"torch": str(self.torch.__version__), "transformers": str(transformers.__version__)}

    # ------------------------------------------------------------------ shared maths
    def _to_device(self, enc: Dict[str, Any]) -> Dict[str, Any]:
        dev = self.model.device if self.device_map else self.device
        out = {}
        for k, v in enc.items():
            if hasattr(v, "to"):
                v = v.to(dev)
                if v.is_floating_point():
                    v = v.to(self.model.dtype)
            out[k] = v
        return out

    def _candidate_scores(self, prompt: str, encode: Callable[[str], Dict[str, Any]],
                          candidates: Tuple[str, str]) -> Tuple[float, float]:
        torch = self.torch
        sep = " " if prompt.rstrip() == prompt and prompt.endswith(":") else ""
        p_ids = encode(prompt)["input_ids"][0]
        out: List[float] = []
        for cand in candidates:
            enc = encode(prompt + sep + cand)
            ids = enc["input_ids"][0]
            # the prompt's tokens can merge with the answer's at the boundary; score from the
            # first position where the two encodings differ
            n = min(len(p_ids), len(ids) - 1)
            start = int(n if torch.equal(ids[:n], p_ids[:n]) else (ids[:n] != p_ids[:n]).nonzero()[0, 0])
            start = max(1, start)
            with torch.no_grad():
                logits = self.model(**self._to_device(enc)).logits[0].float()
            logp = torch.log_softmax(logits[start - 1:-1], dim=-1)
            tgt = ids[start:].to(logp.device)
            out.append(float(logp.gather(1, tgt[:, None]).sum()))
        if not all(np.isfinite(out)):
            raise BackendError(f"non-finite candidate log-likelihoods {out}")
        return out[0], out[1]

    def _answer(self, item: Item, prompt: str, encode: Callable[[str], Dict[str, Any]], decode) -> Answer:
        try:
            return self._answer_unchecked(item, prompt, encode, decode)
        except (BackendError, BackendUnavailable):
            raise
        except (RuntimeError, ValueError, IndexError) as exc:
            # out of memory on one long transcript, a prompt past the context length, a processor
            # refusing an input: that item fails, the run goes on
            raise BackendError(f"{item.key}: {type(exc).__name__}: {str(exc)[:300]}") from None

    def _answer_unchecked(self, item: Item, prompt: str, encode: Callable[[str], Dict[str, Any]], decode) -> Answer:
        torch = self.torch
        t0 = time.perf_counter()
        self.calls += 1
        scores = self._candidate_scores(prompt, encode, item.candidates) if self.want_scores else None
        meta: Dict[str, Any] = {"backend": self.name}
        if self.answer_mode == "choice":
            text = item.candidates[int(scores[1] > scores[0])]
        else:
            enc = self._to_device(encode(prompt))
            torch.manual_seed(self.seed)
            with torch.no_grad():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False)
            new = gen[0, enc["input_ids"].shape[1]:]
            text = decode(new).strip()
            meta["completion_tokens"] = int(new.shape[0])
            meta["prompt_tokens"] = int(enc["input_ids"].shape[1])
        meta["latency_s"] = time.perf_counter() - t0
        return Answer(text, scores, meta)


@BACKENDS.register("hf")
class HFVideoBackend(_HFBase):
    name = "hf"
    needs_frames = True
    video_prompts = True

    def load(self) -> None:
        cfg = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        if cfg.get("model_type") == "video_llava":
            from transformers import VideoLlavaForConditionalGeneration as M
            from transformers import VideoLlavaProcessor as P
        else:
            from transformers import AutoModelForImageTextToText as M
            from transformers import AutoProcessor as P
        kw = self._load_kwargs()
        self.model = M.from_pretrained(str(self.path), **kw)
        self.processor = P.from_pretrained(str(self.path), local_files_only=True, trust_remote_code=self.trust_remote_code)
        log.info("loaded %s (%s) from %s", type(self.model).__name__, type(self.processor).__name__, self.path)

    def _prompt(self, item: Item) -> str:
        if item.prompt.text is not None:
            return item.prompt.text
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": item.prompt.content}]}]
        try:
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # noqa: BLE001 -- transformers raises ValueError or others when no template
            raise BackendUnavailable(f"{self.path}: the processor has no usable chat template ({exc}); "
                                     f"use --style compat") from None

    def predict(self, item: Item) -> Answer:
        if not item.frames:
            raise BackendError(f"{item.key}: the hf backend needs frames")
        video = np.stack(item.frames)

        def encode(text: str) -> Dict[str, Any]:
            return self.processor(text=text, videos=[video], return_tensors="pt")

        tok = getattr(self.processor, "tokenizer", self.processor)
        return self._answer(item, self._prompt(item), encode, lambda ids: tok.decode(ids, skip_special_tokens=True))


@BACKENDS.register("hf-text")
class HFTextBackend(_HFBase):
    name = "hf-text"
    needs_frames = False
    video_prompts = False

    def load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = AutoModelForCausalLM.from_pretrained(str(self.path), **self._load_kwargs())
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True,
                                                       trust_remote_code=self.trust_remote_code)

    def _prompt(self, item: Item) -> str:
        if item.prompt.text is not None:
            return item.prompt.text
        try:
            return self.tokenizer.apply_chat_template([{"role": "user", "content": item.prompt.content}],
                                                      add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # noqa: BLE001
            raise BackendUnavailable(f"{self.path}: the tokenizer has no usable chat template ({exc}); "
                                     f"use --style compat") from None

    def predict(self, item: Item) -> Answer:
        def encode(text: str) -> Dict[str, Any]:
            enc = self.tokenizer(text, return_tensors="pt")
            enc.pop("token_type_ids", None)
            return dict(enc)

        return self._answer(item, self._prompt(item), encode,
                            lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True))
