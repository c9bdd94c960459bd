"""Synaptic metaplasticity in binarized neural networks (Laborieux et al., Nat. Commun. 12,
2549, 2021): a reimplementation of the paper's experiments."""

__version__ = "0.1.0"
