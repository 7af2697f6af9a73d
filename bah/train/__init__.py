"""The trainer: options, dataset and windows, the engine (one loop for every model),
optimisers, checkpoints, early stopping, DDP and the run folder."""
