"""Launching the paper's runs (:mod:`metaplastic.paper`) locally or on SLURM, and the summaries
of finished runs."""
