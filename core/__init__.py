"""maekit: a plugin-based toolkit for masked autoencoders across modalities.

The package root stays import-light (no torch) so that ``maekit list`` is quick; the main API is
re-exported lazily.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from maekit.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "Tokens": "maekit.structures",
    "Mask": "maekit.structures",
    "MaskedAutoencoder": "maekit.model",
    "build_model": "maekit.model",
    "load_plugins": "maekit.plugins",
}

__all__ = ["__version__", "hookimpl", *_LAZY_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        return getattr(import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'maekit' has no attribute {name!r}")
