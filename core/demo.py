"""The main job: pre-train a small MAE on bundled real data, probe it, and write the evidence."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["run_demo"]


def run_demo(out_dir: str | Path, config: str = "mae_demo_digits", max_iters: int | None = None, seed: int = 0,
             amp: str = "off", log: Any = print) -> dict[str, Any]:
    """Pre-train ``config`` on CPU, linear-probe and k-NN the encoder against the same architecture
    untrained, and write ``metrics.json`` and ``reconstructions.png`` into ``out_dir``."""
    from maekit.data.views import EvalTransform, default_mean_std
    from maekit.engine import load_config, train
    from maekit.evaluation import load_trained_model, probe
    from maekit.registry import build
    from maekit.visualize import reconstruction_panels, save_grid

    started = time.perf_counter()
    out_dir = Path(out_dir)
    cfg = load_config(config)
    if max_iters is not None:
        cfg.merge_from_dict({"schedule.max_iters": max_iters, "checkpoint_interval": max_iters,
                             "schedule.warmup_iters": min(cfg.schedule.get("warmup_iters", 0), max_iters // 10)})
    runner = train(cfg, out_dir / "work", amp=amp, device="cpu", seed=seed)
    final_loss = float(runner.message_hub.get_scalar("train/loss").current())
    checkpoint = out_dir / "work" / f"iter_{cfg.schedule.max_iters}.pth"

    probe_cfg = cfg.get("probe") or {}
    train_set = build("dataset", probe_cfg.get("train", dict(type="digits", split="train", size=32, channels=1)))
    test_set = build("dataset", probe_cfg.get("test", dict(type="digits", split="test", size=32, channels=1)))
    channels = int(train_set[0]["inputs"].shape[0])
    mean, std = default_mean_std(channels)
    transform = EvalTransform(size=tuple(train_set[0]["inputs"].shape[-2:]), mean=mean, std=std)

    torch.manual_seed(seed)
    pretrained = load_trained_model(cfg.model, checkpoint)
    torch.manual_seed(seed)
    random_init = load_trained_model(cfg.model, None)
    scores = {"pretrained": probe(pretrained, train_set, test_set, transform),
              "random_init": probe(random_init, train_set, test_set, transform)}

    images = torch.stack([transform(test_set[i]["inputs"]) for i in range(8)])
    noise = torch.rand(images.shape[0], pretrained.tokenize(images).num_tokens, generator=torch.Generator().manual_seed(seed))
    grid = save_grid(reconstruction_panels(pretrained, images, mean, std, noise=noise), out_dir / "reconstructions.png", scale=4)

    metrics = {
        "probe_accuracy_pretrained": scores["pretrained"]["linear_probe_accuracy"],
        "probe_accuracy_random_init": scores["random_init"]["linear_probe_accuracy"],
        "knn_accuracy_pretrained": scores["pretrained"]["knn_accuracy"],
        "knn_accuracy_random_init": scores["random_init"]["knn_accuracy"],
        "final_loss": final_loss,
        "iterations": int(cfg.schedule.max_iters),
        "seconds": round(time.perf_counter() - started, 1),
        "config": config,
        "seed": seed,
        "checkpoint": str(checkpoint),
        "reconstructions": str(grid),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log(f"linear probe: pretrained {metrics['probe_accuracy_pretrained']:.3f} vs random init "
        f"{metrics['probe_accuracy_random_init']:.3f}; k-NN: {metrics['knn_accuracy_pretrained']:.3f} vs "
        f"{metrics['knn_accuracy_random_init']:.3f}; final loss {final_loss:.4f}; {metrics['seconds']} s")
    return metrics
