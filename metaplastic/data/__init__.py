"""Data: the dataset registry, loaders into tensors, tasks, augmentation, and the offline
preparers (:mod:`metaplastic.data.sources`)."""
