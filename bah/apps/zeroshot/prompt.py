"""Zero-shot prompts, read from YAML (``prompts.yaml`` ships with the package).

``compat`` renders the original script's five strings byte for byte; ``chat`` sends the same
content as one user message that the model's own chat template (or an OpenAI-compatible
server) wraps. Slots are filled with plain ``str.replace`` -- never ``str.format`` -- so braces
in a transcript are kept as they are, and ``{definition}`` goes in before ``{transcript}`` so a
transcript that happens to contain ``{definition}`` is not expanded.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple


from bah.core.files import read_yaml

__all__ = ["PROMPTS_FILE", "Prompt", "PromptBook", "RenderedPrompt", "load_prompts", "PromptError"]

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")


class PromptError(ValueError):
    """A prompt file or prompt request that cannot be used; the message names it."""


@dataclass(frozen=True)
class Prompt:
    name: str
    body: str
    definition: Optional[str]  # the definition's text, already looked up
    uses_transcript: bool
    paper: Optional[str]


@dataclass(frozen=True)
class RenderedPrompt:
    """One prompt ready for a backend.

    ``text`` is the complete string for plain-format models (compat style), None in chat style.
    ``content`` is the user message alone (what a chat template or an HTTP server receives).
    """

    name: str
    style: str
    video: bool
    text: Optional[str]
    content: str

    @property
    def hash(self) -> str:
        blob = json.dumps({"style": self.style, "video": self.video, "text": self.text, "content": self.content},
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class PromptBook:
    def __init__(self, data: Mapping[str, Any], source: str = "<memory>"):
        self.source = source
        try:
            self.candidates: Tuple[str, str] = tuple(data["candidates"])  # type: ignore[assignment]
            defs: Mapping[str, str] = data["definitions"]
            self.instruction: str = data["instruction"]
            self.instruction_chat: str = data.get("instruction_chat", self.instruction.strip())
            self.styles: Mapping[str, Mapping[str, str]] = data["styles"]
            raw_prompts: Mapping[str, Mapping[str, Any]] = data["prompts"]
        except (KeyError, TypeError) as exc:
            raise PromptError(f"{source}: missing or malformed key {exc}") from None
        if len(self.candidates) != 2:
            raise PromptError(f"{source}: 'candidates' must list exactly two answers (label 0, label 1)")
        self.prompts: Dict[str, Prompt] = {}
        for name, p in raw_prompts.items():
            d = p.get("definition")
            if d is not None and d not in defs:
                raise PromptError(f"{source}: prompt {name!r} names unknown definition {d!r}; known: {sorted(defs)}")
            body = str(p.get("body", ""))
            if "{definition}" in body and d is None:
                raise PromptError(f"{source}: prompt {name!r} has a {{definition}} slot but no 'definition'")
            uses_t = bool(p.get("transcript", "{transcript}" in body))
            self.prompts[str(name)] = Prompt(str(name), body, defs[d] if d else None, uses_t, p.get("paper"))
        self.fallback: Optional[str] = data.get("compat_fallback")
        if self.fallback is not None and self.fallback not in self.prompts:
            raise PromptError(f"{source}: compat_fallback {self.fallback!r} is not a prompt")

    def names(self) -> List[str]:
        return sorted(self.prompts)

    def style_names(self) -> List[str]:
        return sorted(self.styles)

    def get(self, name: str, compat_fallback: bool = False) -> Prompt:
        if name in self.prompts:
            return self.prompts[name]
        if compat_fallback and self.fallback:
            # the original script answers an unknown --prompt_flag with the Simple prompt, silently
            return self.prompts[self.fallback]
        raise PromptError(f"unknown prompt {name!r} in {self.source}; known: {', '.join(self.names())}")

    def body(self, prompt: Prompt, transcript: Optional[str]) -> str:
        body = prompt.body
        if prompt.definition is not None:
            body = body.replace("{definition}", prompt.definition)
        if "{transcript}" in body:
            if transcript is None:
                raise PromptError(f"prompt {prompt.name!r} needs a transcript")
            body = body.replace("{transcript}", transcript)
        return body

    def render(self, name: str, transcript: Optional[str] = None, style: str = "compat", video: bool = True,
               compat_fallback: bool = False) -> RenderedPrompt:
        prompt = self.get(name, compat_fallback=compat_fallback)
        if style not in self.styles:
            raise PromptError(f"unknown prompt style {style!r} in {self.source}; known: {', '.join(self.style_names())}")
        st = self.styles[style]
        body = self.body(prompt, transcript)
        if style == "compat" or "video" in st or "text" in st:
            key = "video" if video else "text"
            if key not in st:
                raise PromptError(f"{self.source}: style {style!r} has no {key!r} template")
            joined = body + st.get("joiner", "") + self.instruction if body else self.instruction
            full = st[key].replace("{body}", body + st.get("joiner", "") if body else "")
            full = full.replace("{instruction}", self.instruction)
            return RenderedPrompt(prompt.name, style, video, full, joined)
        joiner = st.get("joiner", " ")
        content = (body.strip() + joiner if body.strip() else "") + self.instruction_chat
        return RenderedPrompt(prompt.name, style, video, None, content)


def load_prompts(path: Optional[os.PathLike] = None) -> PromptBook:
    path = Path(path) if path else PROMPTS_FILE
    data = read_yaml(path, PromptError, what="prompt file")
    return PromptBook(data, str(path))
