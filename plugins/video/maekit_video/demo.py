"""``maekit demo video``: pre-train on the moving-digit clips (written as .mp4 and read back through
the real loader), probe against random init, fine-tune both with VideoMAE's protocol (the paper's
evaluation: MAE features are made to be fine-tuned), and draw frame strips and an animated GIF."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_video_demo"]


def run_video_demo(out_dir: str | Path, config: str = "videomae_demo_moving_digits", max_iters: int | None = None,
                   seed: int = 0, amp: str = "off", log: Any = print, finetune: bool = True) -> dict[str, Any]:
    """Core's demo (pre-train, mean-pool probe and k-NN vs the same model untrained, strips of
    input | masked | reconstruction frames in ``reconstructions.png``) plus ``reconstructions.gif``
    and, with ``finetune``, the config's fine-tuning from the pre-trained and from random weights
    (``finetune_accuracy_*``, top-1 over the test views)."""
    import torch

    from maekit.eval.demo import run_demo
    from maekit.eval.finetune import run_finetune
    from maekit.model import seeded_noise
    from maekit_video.visualize import clip_columns, save_gif

    out_dir = Path(out_dir)

    def evaluate(models, train_set, test_set, transform, cfg) -> dict[str, Any]:
        model = models["pretrained"].eval()
        clips = torch.stack([transform(test_set[i]["inputs"]) for i in range(4)])
        with torch.no_grad():
            out = model.run_steps(clips, noise=seeded_noise(seed))
        found: dict[str, Any] = {"animation": str(save_gif(clip_columns(model, out, transform.mean, transform.std),
                                                           out_dir / "reconstructions.gif"))}
        if finetune and cfg.get("finetune"):
            checkpoint = out_dir / "work" / f"iter_{cfg.schedule.max_iters}.pth"
            for name, weights in (("pretrained", checkpoint), ("random_init", None)):
                tuned = run_finetune(cfg, None if weights is None else str(weights), out_dir / f"finetune_{name}",
                                     seed=seed)
                found[f"finetune_accuracy_{name}"] = tuned["top1_accuracy"]
            log(f"fine-tuning ({cfg.finetune.schedule.max_iters} iterations): pretrained "
                f"{found['finetune_accuracy_pretrained']:.3f} vs random init {found['finetune_accuracy_random_init']:.3f}")
        return found

    return run_demo(out_dir, config, max_iters, seed, amp, log, extra_evaluation=evaluate)
