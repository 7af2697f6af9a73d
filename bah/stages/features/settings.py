"""The feature stage's settings (section ``features``): which extractors run and the
settings that change their numbers (only those enter each extractor's status hash)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

from bah.core.config import section
from bah.core.files import config_hash

STAGE = "features"
VERSION = 2  # bump when an extractor's output changes for the same settings (2: rows at recorded frame times)



@section("features")
@dataclass(frozen=True)
class FeatureConfig:
    extractors: Tuple[str, ...] = ("logmel", "bert", "landmarks")
    text_model: str = "bert-base-uncased"  # hub name, local folder, or "minilm" (packaged, offline)
    text_alignment: str = "uniform"  # uniform (original) | timestamps (Whisper chunks)
    text_fill: str = "zeros"  # timestamps: frames without speech get zeros | nearest token
    text_max_length: int = 256
    text_batch_size: int = 32
    vggish_weights: Optional[str] = None  # torchvggish vggish-10086976.pth
    ir50_weights: Optional[str] = None  # res50_ir_0.887.pth
    resnet_path: Optional[str] = None  # folder with mini_config.yml + model.pt
    compat: bool = False  # frame i at i/fps (not its recorded time); vggish: the original's windows, row shift, int16 audio
    batch_size: int = 256  # examples / faces per forward pass
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # fp16 autocast for the face backbones on GPU
    skip_unavailable: bool = True  # skip extractors whose optional package is missing

    def __post_init__(self) -> None:
        ex = self.extractors
        if isinstance(ex, str):
            ex = tuple(s.strip() for s in ex.split(",") if s.strip())
        object.__setattr__(self, "extractors", tuple(ex))
        # Function-level import: the registries live with the extractors, which import
        # this module for their default settings.
        from bah.stages.features import EXTRACTORS
        from bah.stages.features.text import ALIGNMENTS

        try:  # unknown names fail with the list of known ones
            for name in self.extractors:
                EXTRACTORS.get(name)
            ALIGNMENTS.get(self.text_alignment)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        if len(set(self.extractors)) != len(self.extractors):
            raise ValueError(f"extractors listed twice: {list(self.extractors)}")
        if self.text_fill not in ("zeros", "nearest"):
            raise ValueError(f"text_fill must be 'zeros' or 'nearest', got {self.text_fill!r}")
        if self.batch_size < 1 or self.text_batch_size < 1:
            raise ValueError("batch sizes must be >= 1")

    def result_hash(self, name: str) -> str:
        # each extractor names the settings that change its numbers (``result_keys``); only
        # those enter its status hash, so changing one extractor's setting redoes only it
        from bah.stages.features import EXTRACTORS

        d = asdict(self)
        keys = EXTRACTORS.get(name).result_keys
        return config_hash({"extractor": name, "version": VERSION, **{k: d[k] for k in keys}})
