"""Applications built on the trainer and the stages: the pipeline/demo, predict, zero-shot
and personalisation."""
