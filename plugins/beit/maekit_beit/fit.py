"""Training a tokenizer on its own, before the method that predicts its ids (``maekit
tokenizer-train``): the tokenizer a config's model names, fitted on that config's training data
through its training transform, written to a file the config can then name as ``weights=``."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["train_tokenizer"]


def train_tokenizer(cfg: Any, out: str | Path, seed: int = 0, log: Any = print) -> dict[str, Any]:
    """Fit ``cfg.model.tokenizer`` on ``cfg.data`` (dataset and transform, in batches of
    ``data.batch_size``) and write its state to ``out`` (safetensors) with ``<out>.json`` beside
    it (the fit's figures); returns those figures."""
    import torch
    from torch.utils.data import DataLoader

    from maekit.data.views import AugmentedView
    from maekit.io.checkpoint import save_state_dict, write_json
    from maekit.nn.tokenizers import fit_tokenizers
    from maekit.registry import build

    spec = (cfg.get("model") or {}).get("tokenizer")
    if not spec:
        raise ValueError(f"config {cfg.filename}: model.tokenizer is not set (e.g. tokenizer=dict(type='vq', ...))")
    if spec.get("weights"):
        raise ValueError(f"config {cfg.filename}: model.tokenizer already reads weights={spec['weights']!r}; remove "
                         f"them to train a new one")
    data = cfg.get("data") or {}
    if "dataset" not in data:
        raise ValueError(f"config {cfg.filename}: data.dataset is not set (the images to train the tokenizer on)")
    started = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = build("tokenizer", dict(spec))
    if tokenizer.fitted:
        raise ValueError(f"the {spec.get('type')} tokenizer is not trainable (it is fitted already)")
    # a seeded random order (as the training engine's fit): the first fit_samples images of a
    # class-sorted folder would be its first classes only
    loader = DataLoader(AugmentedView(data["dataset"], data.get("transform"), seed=seed),
                        batch_size=int(data.get("batch_size", 64)), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    fit_tokenizers(tokenizer, loader, seed=seed)
    out = Path(out)
    save_state_dict(tokenizer.state_dict(), out, metadata={"tokenizer": str(spec.get("type"))})
    report = {"tokenizer": spec.get("type"), "vocab_size": tokenizer.vocab_size, "file": str(out),
              **getattr(tokenizer, "fit_report", {}), "seconds": round(time.perf_counter() - started, 1)}
    write_json(out.with_suffix(".json"), report)
    log(f"trained the {spec.get('type')} tokenizer in {report['seconds']} s; written to {out}")
    return report
