"""Reading and writing weights without ever executing pickled code.

``.safetensors`` files are read with safetensors; anything else with ``torch.load(weights_only=True)``,
which rebuilds only tensors and plain containers. ``argparse.Namespace`` is allowed on top because
the official MAE checkpoints store their training arguments as one; it carries data, not code.
Every write goes through :func:`atomic_write`: a temporary file in the same folder, flushed to
disk, then renamed into place, so an interrupted save never leaves a truncated file under the final
name. This is the one reader and writer of weights in maekit: the engine's mmengine loader and
file backend (:mod:`maekit.engine.safety`) and every command use it.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

__all__ = ["CheckpointError", "shards_of", "SAFE_GLOBALS", "atomic_write", "write_bytes", "write_json", "write_arrays",
           "write_array", "remove_stale_temporaries", "torch_load", "load_file",
           "load_state_dict", "save_state_dict", "unwrap_state_dict"]

SAFE_GLOBALS: list[Any] = [argparse.Namespace]
TEMPORARY_SUFFIX = ".maekit-tmp"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read safely, or does not hold what was expected."""


def _resolve(path: Path) -> Path:
    if path.is_dir():  # a transformers-style model folder
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path} is a folder without model.safetensors or pytorch_model.bin")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once, at import: os.umask can only be read by setting it (not thread-safe)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)``, flush the file to disk and rename it to ``path``: readers see
    the old file or the whole new one, never a part. The temporary file is removed on failure."""
    path = Path(path)
    tmp_name = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
        os.close(handle)
        write(tmp_name)
        with open(tmp_name, "rb+") as stream:  # flush what ``write`` wrote to the disk
            os.fsync(stream.fileno())
        os.chmod(tmp_name, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_name, path)
        _sync_folder(path.parent)  # the rename itself survives a power cut
    except OSError as error:  # a full disk, a read-only folder...: say which file
        raise OSError(error.errno, f"{path}: could not be written ({error.strerror or error})") from error
    finally:
        if tmp_name and os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def _sync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """``obj`` as JSON, atomically (metrics, manifests)."""
    import json

    return write_bytes(path, json.dumps(obj, indent=indent).encode())


def write_arrays(path: str | Path, compressed: bool = False, **arrays: Any) -> Path:
    """numpy arrays as one ``.npz``, atomically (caches)."""
    import numpy as np

    def write(tmp_name: str) -> None:
        with open(tmp_name, "wb") as stream:  # a file object: numpy would append ".npz" to a name
            (np.savez_compressed if compressed else np.savez)(stream, **arrays)

    return atomic_write(path, write)


def write_array(path: str | Path, array: Any) -> Path:
    """One numpy array as ``.npy``, atomically (caches)."""
    import numpy as np

    def write(tmp_name: str) -> None:
        with open(tmp_name, "wb") as stream:
            np.save(stream, array)

    return atomic_write(path, write)


def shards_of(checkpoint: str | Path) -> Path:
    """The folder of a sharded (FSDP) checkpoint's shards beside its file: ``iter_6.pth`` →
    ``iter_6.dcp`` (``torch.distributed.checkpoint``'s format)."""
    path = Path(checkpoint)
    return path.with_name(path.stem + ".dcp")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that :func:`atomic_write` left in ``folder`` when its process was
    killed mid-write (``.<name>.<random>.maekit-tmp``, and ``.<name>.<random>.tmp`` of maekit 0.1's
    writer), and sharded checkpoint folders of an interrupted save (``iter_N.dcp.tmp``); returns what
    was removed."""
    folder = Path(folder)
    patterns = (f".*{TEMPORARY_SUFFIX}", ".*.pth.*.tmp", ".last_checkpoint.*.tmp", "*.dcp.tmp")
    stale = sorted({p for pattern in patterns for p in folder.glob(pattern)}) if folder.is_dir() else []
    for path in stale:
        if path.is_dir():  # a sharded checkpoint's folder whose ranks did not all finish
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    def write(tmp_name: str) -> None:
        Path(tmp_name).write_bytes(data)

    return atomic_write(path, write)


def torch_load(path: str | Path, safe_globals: Sequence[Any] = (), map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` allowing only ``SAFE_GLOBALS`` and ``safe_globals`` (data-only
    types); a file holding anything else is refused with a :class:`CheckpointError`."""
    try:
        with torch.serialization.safe_globals([*SAFE_GLOBALS, *safe_globals]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message: its advice to retry with weights_only=False (which would run the code),
        # then the unpickler's reason; keep the reason only
        advice = ("Weights only load failed", "Check the documentation", "Please file an issue")
        lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.strip().startswith(advice)]
        reason = (lines[0] if lines else "content outside the allowed types").replace("WeightsUnpickler error: ", "")
        raise CheckpointError(
            f"{path}: refused to load: the file holds pickled objects other than tensors and plain "
            f"containers ({reason}). maekit never executes pickled code; re-save the weights as a plain "
            f"state dict or as .safetensors from a trusted environment") from None


def load_file(path: str | Path) -> Any:
    """The object stored in a checkpoint file (weights only; never runs pickled code)."""
    path = _resolve(Path(path))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file as load_safetensors

        try:
            return load_safetensors(str(path), device="cpu")
        except Exception as error:
            raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from error
    try:
        return torch_load(path)
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from error


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside common checkpoint wrappers ({'model': ...}, {'state_dict': ...}, ...)."""
    for key in ("model", "state_dict", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} does not hold a state dict (a mapping of names to tensors)")
    return obj


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (unwrapped from common checkpoint layouts)."""
    return unwrap_state_dict(load_file(path), source=str(path))


def save_state_dict(state_dict: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None,
                    wrap: str | None = None) -> Path:
    """Write a state dict atomically: ``.safetensors`` by suffix, else a weights-only torch file —
    holding ``{wrap: state}`` when ``wrap`` is given (the official MAE scripts read ``["model"]``)."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}

    if path.suffix == ".safetensors":
        from safetensors.torch import save

        return write_bytes(path, save(tensors, metadata=metadata))
    buffer = io.BytesIO()  # serialised first: torch.save reports a full disk as a RuntimeError
    torch.save(tensors if wrap is None else {wrap: tensors}, buffer)
    return write_bytes(path, buffer.getvalue())
