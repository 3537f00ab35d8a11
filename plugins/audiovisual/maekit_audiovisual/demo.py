"""``maekit demo audiovisual`` (MAViL's stage 1; ``--config av_mae_demo_talking_digits`` for
Audiovisual MAE) and ``maekit demo mavil`` (MAViL, both stages) on the talking digits: pre-train,
then the frozen features of the pre-trained model and of the same architecture untrained — a
linear probe and k-NN on the joint features and on each modality alone, and audio↔video retrieval
on the 449 held-out clips (voices never heard in training)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from maekit.io.checkpoint import write_json

__all__ = ["run_audiovisual_demo", "run_mavil_demo"]


def _evaluate(cfg: Any, checkpoint: Path, seed: int, out_dir: Path, finetune_iters: int | None,
              log: Any) -> dict[str, Any]:
    from maekit.eval.demo import trained_and_untrained
    from maekit.eval.visualize import save_grid
    from maekit.model import seeded_noise
    from maekit.registry import build
    from maekit_audiovisual.evaluate import av_eval_report
    from maekit_audiovisual.visualize import AV_TITLES, av_panels

    eval_transform = build("transform", cfg.eval_transform)
    train_transform = build("transform", cfg.data.transform)
    models = trained_and_untrained(cfg.model, checkpoint, seed)
    test = build("dataset", dict(cfg.av_eval["test"], train=False))
    samples = [test[i] for i in range(0, len(test), max(1, len(test) // 4))[:4]]  # four clips across the test set
    import torch

    batch = {"inputs": torch.stack([eval_transform(s["inputs"]) for s in samples]),
             "audio": torch.stack([s["audio"] for s in samples])}
    pretrained = models["pretrained"]
    pretrained.eval()
    with torch.no_grad():
        rows = av_panels(pretrained, pretrained.run_steps(batch, noise=seeded_noise(seed)))
    picture = save_grid(rows, out_dir / "reconstructions.png", scale=3, titles=AV_TITLES)
    metrics: dict[str, Any] = {"picture": str(picture)}
    for name, model in models.items():
        report = av_eval_report(model, dict(cfg.av_eval), eval_transform, train_transform, finetune_iters, seed, log)
        metrics.update({f"{key}_{name}": value for key, value in report.items()})
    return metrics


def run_audiovisual_demo(out_dir: str | Path, config: str = "mavil_demo_talking_digits", max_iters: int | None = None,
                         seed: int = 0, amp: str = "off", log: Any = print, finetune_iters: int | None = None,
                         overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pre-train ``config`` (``overrides``: dotted keys set first), then the evaluation of the
    module docstring; writes ``metrics.json`` and ``reconstructions.png`` (per test clip: the middle
    frame and the spectrogram, each input | masked | reconstruction). The default is MAViL's stage
    1, the plugin's method that beats random init on every linear probe of the demo; Audiovisual
    MAE does not at this scale (README, Demo)."""
    from maekit.eval.demo import pretrain

    started, out_dir = time.perf_counter(), Path(out_dir)
    cfg, final_loss, checkpoint = pretrain(out_dir, config, max_iters, seed, amp, overrides)
    pretraining_seconds = round(time.perf_counter() - started, 1)
    metrics = _evaluate(cfg, checkpoint, seed, out_dir, finetune_iters, log)
    metrics.update({"final_loss": final_loss, "iterations": int(cfg.schedule.max_iters), "config": config, "seed": seed,
                    "pretraining_seconds": pretraining_seconds, "seconds": round(time.perf_counter() - started, 1),
                    "checkpoint": str(checkpoint),
                    "evaluated_on": "the held-out talking digits (speakers never heard in training); 10 classes, "
                                    "chance 10%; retrieval chance R@1 = 100 / clips %"})
    write_json(out_dir / "metrics.json", metrics)
    log(f"linear probe top-1, pre-trained (random init): joint {metrics['probe/joint_pretrained']:.1f} "
        f"({metrics['probe/joint_random_init']:.1f}), audio {metrics['probe/audio_pretrained']:.1f} "
        f"({metrics['probe/audio_random_init']:.1f}), video {metrics['probe/video_pretrained']:.1f} "
        f"({metrics['probe/video_random_init']:.1f}); audio→video R@1 "
        f"{metrics['retrieval/audio_to_video_R@1_pretrained']:.1f} ({metrics['retrieval/audio_to_video_R@1_random_init']:.1f}); "
        f"final loss {final_loss:.3f}; {metrics['seconds']} s")
    return metrics


def run_mavil_demo(out_dir: str | Path, config: str = "mavil_demo_talking_digits", max_iters: int | None = None,
                   seed: int = 0, amp: str = "off", log: Any = print, finetune_iters: int | None = None,
                   overrides: dict[str, Any] | None = None,
                   stage2_config: str = "mavil_stage2_demo_talking_digits") -> dict[str, Any]:
    """MAViL stage 1 (``config``) into ``out_dir/stage1``, then stage 2 (``stage2_config``, the
    stage-1 checkpoint as its teacher) into ``out_dir/stage2``, each run and evaluated by
    :func:`run_audiovisual_demo`."""
    out_dir = Path(out_dir)
    first = run_audiovisual_demo(out_dir / "stage1", config, max_iters, seed, amp, log, finetune_iters, overrides)
    second = run_audiovisual_demo(out_dir / "stage2", stage2_config, max_iters, seed, amp, log, finetune_iters,
                                  {**(overrides or {}), "model.teacher.checkpoint": first["checkpoint"]})
    metrics = {**{f"stage1/{k}": v for k, v in first.items()}, **{f"stage2/{k}": v for k, v in second.items()},
               "picture": first["picture"]}  # stage 2 predicts features: its picture has no reconstruction
    write_json(out_dir / "metrics.json", metrics)
    return metrics
