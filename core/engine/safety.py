"""Two fixes to mmengine's checkpoint I/O, installed once before a Runner is built.

1. Resume under torch ≥ 2.6: mmengine's local loader calls ``torch.load`` without arguments, which
   now means ``weights_only=True`` and fails on the training state mmengine itself saves (message
   hub history buffers hold numpy arrays and bound functions). maekit's runs save that state as
   tensors and plain containers (``DataOnlyCheckpointHook``), and the loader here stays
   weights-only with an explicit allowlist of data-only types (numpy arrays and dtypes, mmengine's
   ``ConfigDict``, ``argparse.Namespace``) for checkpoints written by other mmengine tools:
   never ``weights_only=False``.
2. Atomic writes: mmengine writes checkpoints and ``last_checkpoint`` in place, so a kill during a
   save leaves a truncated file. The local backend here writes through maekit's one atomic writer
   (:func:`maekit.io.checkpoint.write_bytes`).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from maekit.io.checkpoint import CheckpointError, torch_load, write_bytes

__all__ = ["RESUME_SAFE_GLOBALS", "install", "safe_torch_load"]


def _numpy_globals() -> list[Any]:
    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
    dtypes = [type(np.dtype(name)) for name in ("float64", "float32", "float16", "int64", "int32", "uint8", "bool")]
    return [reconstruct, np.ndarray, np.dtype, *dtypes, np.float64, np.float32, np.int64, np.int32, np.bool_]


def _resume_globals() -> list[Any]:
    from mmengine.config import ConfigDict

    return [ConfigDict, argparse.Namespace, *_numpy_globals()]


RESUME_SAFE_GLOBALS: list[Any] = []


def safe_torch_load(filename: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` allowing only mmengine's data-only training-state types."""
    return torch_load(filename, RESUME_SAFE_GLOBALS, map_location)


def _load_from_local(filename: str, map_location: Any = None) -> Any:
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename}: no such checkpoint file")
    return safe_torch_load(filename, map_location)


def _refuse_remote(filename: str, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
    raise CheckpointError(f"{filename}: maekit loads checkpoints from local files only (remote loaders would "
                          f"unpickle without weights_only); download it and pass the local path")


_INSTALLED = False


def install() -> None:
    """Install both fixes into mmengine (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.fileio import LocalBackend, register_backend
    from mmengine.fileio import io as mmengine_io
    from mmengine.runner.checkpoint import CheckpointLoader

    RESUME_SAFE_GLOBALS[:] = _resume_globals()
    CheckpointLoader.register_scheme(prefixes="", force=True)(_load_from_local)
    # mmengine's remote loaders (http, s3, model zoos) call torch.load without weights_only
    remote = [prefix for prefix in CheckpointLoader._schemes if prefix]
    if remote:
        CheckpointLoader.register_scheme(prefixes=remote, force=True)(_refuse_remote)

    class AtomicLocalBackend(LocalBackend):
        """Local files written through a temporary file and an atomic rename."""

        def put(self, obj: bytes, filepath: str | Path) -> None:
            write_bytes(filepath, obj)

        def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
            write_bytes(filepath, obj.encode(encoding))

    register_backend("local", AtomicLocalBackend, force=True, prefixes="")
    mmengine_io.backend_instances.clear()  # drop cached instances of the old backend
    _INSTALLED = True
