"""The keys a maekit config may have, so that a typo is an error naming it, not a silent default.

Core declares its sections here; a plugin declares the sections its configs and commands use (and
keys it adds to core's) through the ``maekit_config_keys`` hook. A section declared with ``None``
takes any keys. ``model`` and component configs (datasets, transforms) are not checked here: their
keys are the components' arguments, checked when they are built. Names starting with ``_`` are a
config file's own variables (``_base_``, ``_delete_``, ``_epoch = 300``).
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

__all__ = ["CORE_KEYS", "RUNNER_KEYS", "known_keys", "check_config_keys"]

SCHEDULE = ["max_iters", "warmup_iters", "blr", "weight_decay", "betas", "accumulate", "clip_grad", "nonfinite",
            "min_lr", "fused", "paramwise_cfg", "constructor", "layer_decay", "iters_per_epoch"]
DATA = ["dataset", "transform", "batch_size", "num_workers", "sampler"]

CORE_KEYS: dict[str, list[str] | None] = {
    "model": None, "data": DATA, "schedule": SCHEDULE,
    "probe": ["train", "test", "pools", "layer"],
    "finetune": ["num_classes", "drop_path_rate", "label_smoothing", "classifier", "classifier_options", "data",
                 "test", "schedule", "eval_transform", "test_batch_size", "checkpoint_interval"],
    "eval_transform": None, "custom_hooks": None,
    "checkpoint_interval": [], "log_interval": [], "max_keep_checkpoints": [], "seed": [], "compile": None,
    "strategy": [], "dist_backend": [], "load_from": [], "find_unused_parameters": [], "log_level": [],
}
# Sections of the expanded mmengine Runner config a maekit config may set directly (passed through).
RUNNER_KEYS = ["optim_wrapper", "param_scheduler", "default_hooks", "log_processor", "visualizer", "env_cfg",
               "randomness", "train_cfg", "train_dataloader", "model_wrapper_cfg", "experiment_name", "launcher",
               "work_dir", "resume", "custom_imports"]
NESTED = ("data", "schedule")  # a section's own data/schedule take the keys of the top-level ones


def known_keys() -> dict[str, list[str] | None]:
    """Core's sections merged with every loaded plugin's (``maekit_config_keys``)."""
    from maekit.plugins import config_keys, merge_config_keys

    return merge_config_keys([CORE_KEYS, {key: None for key in RUNNER_KEYS}, config_keys()])


def _unknown(where: str, key: str, known: Iterable[str], source: str) -> ValueError:
    known = sorted(k for k in known if not k.startswith("_"))
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f"; did you mean {by_lower[close[0]]}?" if close else ""
    return ValueError(f"{source}: {where}{key}: unknown key{hint} (known: {', '.join(known) or 'none'})")


def check_config_keys(cfg: Mapping[str, Any], source: str, sections: Mapping[str, list[str] | None] | None = None) -> None:
    """Raise ``ValueError`` naming the first unknown key of ``cfg`` (from ``source``: a file or
    config name) with the nearest known one."""
    sections = known_keys() if sections is None else sections
    for top, value in cfg.items():
        if top.startswith("_"):
            continue
        if top not in sections:
            raise _unknown("", top, sections, source)
        allowed = sections[top]
        if allowed is None or not isinstance(value, Mapping) or not allowed:
            continue
        for key, inner in value.items():
            if key.startswith("_"):
                continue
            if key not in allowed:
                raise _unknown(f"{top}.", key, allowed, source)
            nested_keys = sections.get(key) if key in NESTED else None
            if nested_keys is not None and isinstance(inner, Mapping):
                for nested in inner:
                    if not nested.startswith("_") and nested not in nested_keys:
                        raise _unknown(f"{top}.{key}.", nested, nested_keys, source)
