"""Settings of ``bah transcribe`` (section ``transcribe``): which Whisper model and how it decodes.

Every setting here changes the words, so all of them enter the status hash.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from bah.core.config import section
from bah.core.files import config_hash

STAGE = "transcribe"
VERSION = 1


@section("transcribe")
@dataclass(frozen=True)
class TranscribeConfig:
    asr_model: str = "tiny.en"  # the packaged model; or a CTranslate2 folder; or a cached faster-whisper name
    compute_type: str = "int8"  # int8 | int8_float32 | float32 | float16 (GPU)
    beam_size: int = 5
    language: Optional[str] = "en"
    threads: int = 1  # CPU threads per recogniser; parallelism across videos comes from blocks
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def result_hash(self) -> str:
        d = asdict(self)
        d.pop("threads")
        d.pop("device")
        return config_hash({"stage": STAGE, "version": VERSION, **d})

    def recogniser(self):
        from bah.stages.speech.asr import Recogniser

        return Recogniser(self.asr_model, compute_type=self.compute_type, threads=self.threads,
                          beam_size=self.beam_size, language=self.language, device=self.device)
