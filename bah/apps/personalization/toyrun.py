"""A small source run (narrow TCNs, a few epochs) in the trainer's run-folder layout.

For tests and the benchmark, where `bah train` with the README widths is too slow on a CPU. The
folder holds ``best-model/{model.pt,config.yml}`` like a real run; ``config.yml`` also records
``tcn_channels``, which ``load_source_run`` passes to the model factory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader

from bah.core.layout import LABEL_MODALITY
from bah.train.dataset import collate


def train_source_run(dataset_path: Path, run_dir: Path, modalities: Sequence[str] = ("vggish", "bert"),
                     model_name: str = "CAN", width: int = 32, levels: int = 2, epochs: int = 6,
                     window: int = 64, hop: int = 32, batch_size: int = 8, lr: float = 1e-3, seed: int = 0,
                     progress: bool = False) -> Path:
    from bah.train.engine import train_one_epoch
    from bah.train.options import parse_options
    from bah.models.factory import build_model, model_kwargs
    from bah.train.trainer import build_datasets, modality_dims, save_best_model, seed_everything

    o = parse_options(["--dataset_path", str(dataset_path), "--model_name", model_name,
                       "--modality", "+".join([*modalities, LABEL_MODALITY]),
                       "--window_length", str(window), "--hop_length", str(hop), "--seed", str(seed),
                       "--num_workers", "0", "--device", "cpu"])
    data = build_datasets(o, splits=("train",))
    dims = modality_dims(data["train"])
    tcn = {m: [width] * levels for m in modalities}
    seed_everything(seed)
    model = build_model(o.model_name, dims, o.compat, **model_kwargs(o), tcn_channels=tcn)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(seed + epoch)
        loader = DataLoader(data["train"], batch_size=batch_size, shuffle=True, collate_fn=collate, generator=g)
        train_one_epoch(model, opt, loader, torch.device("cpu"), epoch, progress=progress)
    model.eval()
    run_dir = Path(run_dir)
    save_best_model(run_dir / "best-model", model, {**o.to_dict(), "tcn_channels": tcn,
                                                    "modality_dims": {m: d for m, d in dims}})
    return run_dir
