"""``maekit demo video``: pre-train on the moving-digit clips (written as .mp4 and read back through
the real loader), probe against random init, and draw frame strips and an animated GIF."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_video_demo"]


def run_video_demo(out_dir: str | Path, config: str = "videomae_demo_moving_digits", max_iters: int | None = None,
                   seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """Core's demo (pre-train, mean-pool probe and k-NN vs the same model untrained, strips of
    input | masked | reconstruction frames in ``reconstructions.png``) plus ``reconstructions.gif``."""
    import torch

    from maekit.eval.demo import run_demo
    from maekit.model import seeded_noise
    from maekit_video.visualize import clip_columns, save_gif

    out_dir = Path(out_dir)

    def gif(models, train_set, test_set, transform, cfg) -> dict[str, Any]:
        model = models["pretrained"].eval()
        clips = torch.stack([transform(test_set[i]["inputs"]) for i in range(4)])
        with torch.no_grad():
            out = model.run_steps(clips, noise=seeded_noise(seed))
        path = save_gif(clip_columns(model, out, transform.mean, transform.std), out_dir / "reconstructions.gif")
        return {"animation": str(path)}

    return run_demo(out_dir, config, max_iters, seed, amp, log, extra_evaluation=gif)
