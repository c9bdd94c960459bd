"""A run's config: the fields every experiment shares (:class:`RunOptions`), the marks of fields
that do not change results or differ per seed, and the config built from parsed flags and
written as config.json."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

def neutral(default=dataclasses.MISSING, **kwargs):
    """A config field that does not change a run's results (device, paths, progress,
    implementation switches equal to float32 rounding): a resumed run may change it, and runs
    that differ only in such fields are one configuration in plots."""
    return dataclasses.field(default=default, metadata={"result_neutral": True}, **kwargs)


def per_seed(**kwargs):
    """A config field derived from the seed (e.g. mnist_usps' training windows): part of the
    run, but seeds of one configuration differ in it."""
    return dataclasses.field(metadata={"per_seed": True}, **kwargs)


def config_marks(config) -> dict:
    """The marked field names of a config dataclass: {"result_neutral": [...], "per_seed": [...]}
    (saved in config.json, read by --resume and by the plots)."""
    fields = dataclasses.fields(config)
    return {mark: sorted(f.name for f in fields if f.metadata.get(mark))
            for mark in ("result_neutral", "per_seed")}


@dataclasses.dataclass
class RunOptions:
    """The fields every experiment's config shares (from :func:`add_run_arguments`)."""

    seed: int = 0
    device: str = neutral("auto")
    data_root: str = neutral("")
    out_dir: str = neutral("")
    impl: str = neutral("auto")
    allow_tf32: bool = neutral(False)
    keep_denormals: bool = neutral(False)
    checkpoint_every: int = neutral(1)
    mixed_resume: bool = neutral(False)
    flip_stats: bool = True


def run_options(args) -> dict:
    """:class:`RunOptions` fields from parsed flags, as keyword arguments of a config."""
    return dict(seed=args.seed, device=args.device, data_root=str(args.data_root or ""),
                out_dir=str(args.out_dir or ""), impl=args.impl,
                allow_tf32=args.allow_tf32, keep_denormals=args.keep_denormals,
                checkpoint_every=args.checkpoint_every, flip_stats=args.flip_stats,
                mixed_resume=args.mixed_resume)


def config_from(args, config_class, **overrides):
    """``config_class`` from parsed flags: every field that is a flag (lists copied), the run
    options (:func:`run_options`), then ``overrides``."""
    run = run_options(args)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)
              if f.name not in run and f.name not in overrides and hasattr(args, f.name)}
    values = {k: list(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_class(**values, **run, **overrides)


def config_dict(config) -> dict:
    """A dataclass config as a JSON-friendly dict."""
    out = {}
    for key, value in dataclasses.asdict(config).items():
        out[key] = str(value) if isinstance(value, Path) else value
    return out


def print_config(config, stream=sys.stdout) -> None:
    print(f"{type(config).__name__}:", file=stream)
    for key, value in config_dict(config).items():
        print(f"  {key:24s} {json.dumps(value)}", file=stream)
