"""Zero-shot A/H prediction with (multimodal) language models: ``bah zeroshot``.

Backends (``BACKENDS``): ``hf`` (local video-LLM by path), ``hf-text`` (local causal LM on the
transcript), ``openai`` (any OpenAI-compatible server), ``fake`` (deterministic, for tests).
The backend modules are imported here so that every backend is registered.
"""
from bah.apps.zeroshot.answer import PARSERS, UNPARSED_POLICIES, AnswerParser, Parse, create_parser
from bah.apps.zeroshot.backend import BACKENDS, Answer, Backend, BackendError, BackendUnavailable, FakeBackend, Item, create_backend
from bah.apps.zeroshot.cache import ResponseCache, cache_key
from bah.apps.zeroshot.frames import SAMPLERS, VISUALS, SampleError
from bah.apps.zeroshot import hf_backend, http_backend  # noqa: F401  (registers hf, hf-text, openai)
from bah.apps.zeroshot.prompt import PromptBook, PromptError, RenderedPrompt, load_prompts
from bah.apps.zeroshot.settings import STAGE, ZeroShotConfig

__all__ = [
    "PARSERS", "UNPARSED_POLICIES", "AnswerParser", "Parse", "create_parser",
    "BACKENDS", "Answer", "Backend", "BackendError", "BackendUnavailable", "FakeBackend", "Item", "create_backend",
    "ResponseCache", "cache_key", "SAMPLERS", "VISUALS", "SampleError",
    "PromptBook", "PromptError", "RenderedPrompt", "load_prompts", "STAGE", "ZeroShotConfig",
]
