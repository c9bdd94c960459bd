"""Where the data lives: the data root, in torchvision's layout (docs/INSTALL.md).

``$METAPLASTIC_DATA`` when set, else the clone's ``data/`` folder, else (an installed wheel)
``$XDG_DATA_HOME/metaplastic-bnn/data``.
"""
from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that overrides the default data root.
DATA_ROOT_ENV = "METAPLASTIC_DATA"

#: The folder holding the metaplastic package: the clone, or site-packages for an installed wheel
#: (which holds reproduce.py and the experiment folders beside it too).
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def clone_root() -> Path | None:
    """The clone this package runs from (the folder holding reproduce.py and the experiment
    folders), or None for an installed package (a wheel in site-packages)."""
    root = PACKAGE_PARENT
    # pyproject.toml is in every clone and never installed (a wheel puts reproduce.py and the
    # experiment folders into site-packages too, so they alone do not tell)
    if (root / "pyproject.toml").is_file() and (root / "continual_learning").is_dir():
        return root
    return None


def user_data_root() -> Path:
    """The data root of an installed package: ``$XDG_DATA_HOME/metaplastic-bnn/data``
    (``~/.local/share/metaplastic-bnn/data`` where XDG_DATA_HOME is unset)."""
    base = os.environ.get("XDG_DATA_HOME", "").strip() or "~/.local/share"
    return Path(base).expanduser() / "metaplastic-bnn" / "data"


def default_data_root() -> Path:
    """The data root: ``$METAPLASTIC_DATA`` if set and non-empty, else the clone's ``data/``
    folder (found from this file, whatever the working directory), else
    :func:`user_data_root`."""
    from_env = os.environ.get(DATA_ROOT_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    clone = clone_root()
    return clone / "data" if clone is not None else user_data_root()


def data_root_or_default(root: str | os.PathLike[str] | None) -> Path:
    """``root`` as a path, or :func:`default_data_root` where it is None or empty."""
    return Path(root) if root is not None and str(root) != "" else default_data_root()
