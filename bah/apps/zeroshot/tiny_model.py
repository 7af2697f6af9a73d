"""Tiny random models saved to a folder: offline tests, benchmarks and GPU placement checks.

They are built from configs (no weights are downloaded) with a word-level tokenizer made in
memory whose vocabulary holds the prompt words and both candidate answers, so the whole
``bah zeroshot`` path -- load by path, process frames, generate, score candidates -- runs in
well under a second on a CPU. Their answers are random, never meaningful.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List

from bah.apps.zeroshot.prompt import load_prompts

__all__ = ["tiny_vocabulary", "save_tiny_video_llava", "save_tiny_causal_lm"]

_EXTRA = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "<video>", "Non-Ambivalent", "Ambivalent", "USER", "ASSISTANT",
          ":", ".", "'", ",", "hello", "but", "maybe", "yes", "no"]


def tiny_vocabulary(extra_words: List[str] = ()) -> List[str]:
    book = load_prompts()
    text = " ".join([book.instruction, book.instruction_chat] + [p.body for p in book.prompts.values()]
                    + [p.definition or "" for p in book.prompts.values()])
    words = re.findall(r"[A-Za-z-]+|[^\sA-Za-z]", text)
    vocab: List[str] = []
    for w in _EXTRA + words + list(extra_words):
        if w not in vocab:
            vocab.append(w)
    return vocab


# a minimal chat template so the `chat` prompt style can be tested offline
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] | upper }}: "
                 "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
                 "{% if c['type'] == 'video' %}<video> {% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
                 "{% endfor %}{% endif %} {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def _tokenizer(vocab: List[str]):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    # words keep their hyphens (Non-Ambivalent is one token); punctuation splits off
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Split(Regex(r"[^A-Za-z<>/-]"), behavior="isolated")])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", additional_special_tokens=["<image>", "<video>"])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _llama_config(vocab_size: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                       pad_token_id=0, bos_token_id=2, eos_token_id=3)


def save_tiny_video_llava(dest: os.PathLike, seed: int = 0, image_size: int = 28) -> Path:
    """A ~85 k-parameter Video-LLaVA (CLIP vision 32-d, Llama 32-d) plus its processor."""
    import torch
    from transformers import (CLIPVisionConfig, VideoLlavaConfig, VideoLlavaForConditionalGeneration,
                              VideoLlavaImageProcessor, VideoLlavaProcessor, VideoLlavaVideoProcessor)

    dest = Path(dest)
    vocab = tiny_vocabulary()
    tok = _tokenizer(vocab)
    size = {"shortest_edge": image_size}
    crop = {"height": image_size, "width": image_size}
    processor = VideoLlavaProcessor(image_processor=VideoLlavaImageProcessor(size=size, crop_size=crop),
                                    video_processor=VideoLlavaVideoProcessor(size=size, crop_size=crop),
                                    tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                                    chat_template=CHAT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=image_size, patch_size=14)
    cfg = VideoLlavaConfig(vision_config=vision, text_config=_llama_config(len(vocab)),
                           image_token_index=vocab.index("<image>"), video_token_index=vocab.index("<video>"),
                           vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = VideoLlavaForConditionalGeneration(cfg).eval()
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest


def save_tiny_causal_lm(dest: os.PathLike, seed: int = 0) -> Path:
    """A ~17 k-parameter Llama causal LM plus its tokenizer."""
    import torch
    from transformers import LlamaForCausalLM

    dest = Path(dest)
    vocab = tiny_vocabulary()
    tok = _tokenizer(vocab)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_llama_config(len(vocab))).eval()
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest
