"""The method: binarized layers, models, the metaplastic rule and optimizers, consolidation,
flip and sign-switch statistics, the training and evaluation steps (docs/METHOD.md)."""
