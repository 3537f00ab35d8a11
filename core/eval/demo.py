"""The main job: pre-train a small model on bundled real data, probe it against random init, and
write the evidence. Plugins offer their own demos by name (hook ``maekit_demos``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from maekit.io.checkpoint import write_bytes, write_json

__all__ = ["run_demo", "run_demo_beside_mae", "run_named_demo", "pretrain", "trained_and_untrained"]


def pretrain(out_dir: Path, config: str, max_iters: int | None = None, seed: int = 0, amp: str = "off",
             overrides: dict[str, Any] | None = None):
    """Pre-train a demo config on CPU into ``out_dir/work``; ``max_iters`` shortens it (warm-up
    kept to a tenth); ``overrides`` sets dotted keys first (e.g. a teacher's checkpoint that an
    earlier step of the demo wrote). The run's ``loss_curve.png`` is copied into ``out_dir``.
    Returns the config, the final logged loss and the last checkpoint."""
    from maekit.engine import load_config, train

    cfg = load_config(config)
    if overrides:
        cfg.merge_from_dict(overrides)
    if max_iters is not None:
        cfg.merge_from_dict({"schedule.max_iters": max_iters, "checkpoint_interval": max_iters,
                             "schedule.warmup_iters": min(cfg.schedule.get("warmup_iters", 0), max_iters // 10)})
    runner = train(cfg, out_dir / "work", amp=amp, device="cpu", seed=seed)
    final_loss = float(runner.message_hub.get_scalar("train/loss").current())
    curve = out_dir / "work" / "loss_curve.png"  # the run's loss curve, next to the demo's metrics too
    if curve.is_file():
        write_bytes(out_dir / "loss_curve.png", curve.read_bytes())
    return cfg, final_loss, out_dir / "work" / f"iter_{cfg.schedule.max_iters}.pth"


def trained_and_untrained(model_cfg: dict, checkpoint: Path, seed: int = 0) -> dict[str, torch.nn.Module]:
    """``{"pretrained": …, "random_init": …}``: the demo's model with the checkpoint loaded, and the
    same architecture built from the same seed, untrained, to compare against (with the trained
    run's fitted tokenizers, e.g. iGPT's palette: the vocabulary is the data's, not learned)."""
    from maekit.eval.probe import load_trained_model
    from maekit.nn.tokenizers import share_fitted_tokenizers

    models = {}
    for name, weights in (("pretrained", checkpoint), ("random_init", None)):
        torch.manual_seed(seed)
        models[name] = load_trained_model(model_cfg, weights)
    share_fitted_tokenizers(models["pretrained"], models["random_init"])
    return models


def run_demo(out_dir: str | Path, config: str = "mae_demo_digits", max_iters: int | None = None, seed: int = 0,
             amp: str = "off", log: Any = print, extra_evaluation: Any = None,
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pre-train ``config`` on CPU, linear-probe and k-NN the encoder (mean-pooled and cls features)
    against the same architecture untrained, and write ``metrics.json`` and ``reconstructions.png``
    into ``out_dir``. ``extra_evaluation(models, train_set, test_set, transform, cfg)`` may add a
    method's own figures (a dict merged into the metrics) from the same models and data.
    ``overrides``: dotted keys set on the config first (see :func:`pretrain`)."""
    from maekit.data.views import evaluation_transform
    from maekit.eval.probe import probe_pools
    from maekit.eval.visualize import save_panels
    from maekit.registry import build

    started = time.perf_counter()
    out_dir = Path(out_dir)
    cfg, final_loss, checkpoint = pretrain(out_dir, config, max_iters, seed, amp, overrides)

    probe_cfg = cfg.get("probe") or {}
    train_set = build("dataset", probe_cfg.get("train", dict(type="digits", split="train", size=32, channels=1)))
    test_set = build("dataset", probe_cfg.get("test", dict(type="digits", split="test", size=32, channels=1)))
    transform = evaluation_transform(train_set, cfg.data.get("transform"), cfg.get("eval_transform"))
    # Mean-pooled patch tokens are the headline probe: MAE's cls token gets no direct training
    # signal in pre-training; the cls-token probe of the paper is reported beside it. A config
    # lists its pools in ``probe.pools`` (headline first), e.g. ("mean",) for encoders without cls.
    pools = tuple(probe_cfg.get("pools", ("mean", "cls")))

    models = trained_and_untrained(cfg.model, checkpoint, seed)
    metrics: dict[str, Any] = {}
    for name, model in models.items():
        for pool, scores in probe_pools(model, train_set, test_set, transform, pools, layer=probe_cfg.get("layer")).items():
            prefix = "" if pool == pools[0] else f"{pool}_"
            metrics[f"{prefix}probe_accuracy_{name}"] = scores["linear_probe_accuracy"]
            metrics[f"{prefix}knn_accuracy_{name}"] = scores["knn_accuracy"]

    if extra_evaluation is not None:
        metrics.update(extra_evaluation(models, train_set, test_set, transform, cfg))

    images = torch.stack([transform(test_set[i]["inputs"]) for i in range(8)])
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    # a method whose panels are drawn at full size sets picture_scale = 1
    grid = save_panels(models["pretrained"], images, mean, std, out_dir / "reconstructions.png", seed=seed)

    metrics.update({
        "probe_features": (f"{pools[0]}-pooled encoder tokens" + "".join(f"; {p}_*: {p} pool" for p in pools[1:])
                           + ("" if probe_cfg.get("layer") is None else f" of block {probe_cfg['layer']} (layer-normed)")),
        "final_loss": final_loss,
        "iterations": int(cfg.schedule.max_iters),
        "seconds": round(time.perf_counter() - started, 1),
        "config": config,
        "seed": seed,
        "checkpoint": str(checkpoint),
        "reconstructions": str(grid),
        "loss_curve": str(out_dir / "loss_curve.png"),
    })
    write_json(out_dir / "metrics.json", metrics)
    log(f"linear probe: pretrained {metrics['probe_accuracy_pretrained']:.3f} vs random init "
        f"{metrics['probe_accuracy_random_init']:.3f}; k-NN: {metrics['knn_accuracy_pretrained']:.3f} vs "
        f"{metrics['knn_accuracy_random_init']:.3f}; final loss {final_loss:.4f}; {metrics['seconds']} s")
    return metrics


def run_demo_beside_mae(out_dir: str | Path, config: str, method: str, max_iters: int | None = None, seed: int = 0,
                        amp: str = "off", log: Any = print) -> dict[str, Any]:
    """Core's demo for ``config`` and for plain MAE (``mae_demo_digits``) at the same budget, side
    by side in ``out_dir/metrics.json`` (MAE's figures prefixed ``mae_``); pictures in
    ``out_dir/<method>/`` and ``out_dir/mae/``. For a method built on MAE that must say whether it
    beats it."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    ours = run_demo(out_dir / method, config, max_iters, seed, amp, log)
    plain = run_demo(out_dir / "mae", "mae_demo_digits", max_iters, seed, amp, log)
    metrics = {**ours, **{f"mae_{key}": value for key, value in plain.items()
                          if "accuracy" in key or key in ("final_loss", "seconds")},
               "seconds": round(time.perf_counter() - started, 1), "picture": ours["reconstructions"]}
    write_json(out_dir / "metrics.json", metrics)
    log(f"linear probe: {method} {metrics['probe_accuracy_pretrained']:.3f} vs MAE {metrics['mae_probe_accuracy_pretrained']:.3f} "
        f"at the same budget (random init {metrics['probe_accuracy_random_init']:.3f}); k-NN "
        f"{metrics['knn_accuracy_pretrained']:.3f} vs {metrics['mae_knn_accuracy_pretrained']:.3f} "
        f"(random init {metrics['knn_accuracy_random_init']:.3f})")
    return metrics


def run_named_demo(name: str, out_dir: str | Path, config: str | None = None, **options: Any) -> dict[str, Any]:
    """Run the demo a plugin offers under ``name`` (``maekit demo NAME``); ``config`` swaps in
    another config for a config-based demo (e.g. a plugin's second encoder kind)."""
    import importlib

    from maekit.plugins import demos

    offered = demos()
    if name not in offered:
        raise ValueError(f"no demo named {name!r}; installed plugins offer: {', '.join(sorted(offered)) or '(none)'}")
    target = offered[name]
    if ":" not in target:  # a config run by the generic demo
        return run_demo(out_dir, config=config or target, **options)
    module, _, function = target.partition(":")
    runner = getattr(importlib.import_module(module), function)
    return runner(out_dir, **({"config": config} if config else {}), **options)
