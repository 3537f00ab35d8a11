"""``maekit demo video``: pre-train on the moving-digit clips (written as .mp4 and read back through
the real loader), probe against random init, fine-tune both with VideoMAE's protocol (the paper's
evaluation: MAE features are made to be fine-tuned), and draw frame strips and an animated GIF.
``maekit demo siammae``: pre-train SiamMAE on frame pairs of the same clips and propagate digit
masks (J&F) against random init."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_video_demo", "run_siammae_demo", "run_mvd_demo"]


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


def run_siammae_demo(out_dir: str | Path, config: str = "siammae_demo_moving_digits", max_iters: int | None = None,
                     seed: int = 0, amp: str = "off", log: Any = print, sequences: int = 40) -> dict[str, Any]:
    """``maekit demo siammae``: pre-train SiamMAE on frame pairs of the moving-digit clips, then
    propagate the first-frame digit mask of ``sequences`` test clips (written as a DAVIS-2017
    folder, digit pixels as ground truth) through their 16 frames with the pre-trained encoder
    and the same one untrained: J&F for both in ``metrics.json``, the propagated masks over the
    frames in ``propagation.png``, past | future | masked | prediction in ``reconstructions.png``."""
    import time

    import numpy as np
    import torch
    from PIL import Image

    from maekit.eval.demo import pretrain, trained_and_untrained
    from maekit.eval.visualize import save_grid, save_panels
    from maekit.io.checkpoint import write_json
    from maekit.registry import build
    from maekit_video.demo_data import write_moving_digit_davis
    from maekit_video.propagation import evaluate_propagation, propagation_options, read_davis

    started = time.perf_counter()
    out_dir = Path(out_dir)
    cfg, final_loss, checkpoint = pretrain(out_dir, config, max_iters, seed, amp)
    test_clips = build("dataset", dict(cfg.data.dataset, split="test", train=False))  # frame pairs of the test clips
    davis = read_davis(write_moving_digit_davis(out_dir / "davis", test_clips, sequences))
    settings, size, _ = propagation_options(cfg.get("propagation"))
    models = trained_and_untrained(cfg.model, checkpoint, seed)
    metrics: dict[str, Any] = {}
    for name, model in models.items():
        found = evaluate_propagation(model, davis, size, settings, out_dir=out_dir / f"masks_{name}")
        metrics.update({f"propagation_jf_{name}": found["J&F"], f"propagation_j_{name}": found["J"],
                        f"propagation_f_{name}": found["F"]})

    # pictures: frames 0, 3, ..., 15 of four clips with the pre-trained model's propagated mask in red
    rows = []
    for sequence in davis[:4]:
        row = []
        for frame in sequence.frames[::3]:
            pixels = np.asarray(Image.open(frame).convert("RGB")).copy()
            mask = np.asarray(Image.open(out_dir / "masks_pretrained" / sequence.name / f"{frame.stem}.png")) > 0
            pixels[mask] = (0.5 * pixels[mask] + (127, 0, 0)).astype(np.uint8)
            row.append(pixels)
        rows.append(row)
    pictures = save_grid(rows, out_dir / "propagation.png", scale=4)
    transform = build("transform", dict(type="video_eval", size=int(cfg.model.img_size)))
    pairs = torch.stack([transform(test_clips[i]["inputs"]) for i in range(min(8, len(test_clips)))])
    grid = save_panels(models["pretrained"], pairs, None, None, out_dir / "reconstructions.png", seed=seed, scale=4)

    metrics.update({"final_loss": final_loss, "iterations": int(cfg.schedule.max_iters), "sequences": len(davis),
                    "seconds": round(time.perf_counter() - started, 1), "config": config, "seed": seed,
                    "checkpoint": str(checkpoint), "propagation": str(pictures), "reconstructions": str(grid),
                    "settings": {**settings.__dict__, "size": list(size)}})
    write_json(out_dir / "metrics.json", metrics)
    log(f"propagation J&F on {len(davis)} clips: pretrained {metrics['propagation_jf_pretrained']:.3f} vs random init "
        f"{metrics['propagation_jf_random_init']:.3f}; final loss {final_loss:.4f}; {metrics['seconds']} s")
    return metrics


def run_mvd_demo(out_dir: str | Path, config: str = "mvd_demo_moving_digits", max_iters: int | None = None,
                 seed: int = 0, amp: str = "off", log: Any = print, image_teacher_config: str = "mvd_demo_image_teacher",
                 video_teacher_config: str = "videomae_demo_moving_digits") -> dict[str, Any]:
    """``maekit demo mvd``: train the two teachers first — an image MAE on scikit-learn's digit
    images (``mvd_demo_image_teacher``) and a VideoMAE on the moving-digit clips
    (``videomae_demo_moving_digits``) — then MVD's student from both for as many iterations as
    the VideoMAE teacher had, and probe (mean-pooled tokens, logistic regression and k-NN) the
    student, the same student untrained, and the VideoMAE teacher: ``metrics.json``. The teacher
    configs must build the encoders ``config``'s ``image_teacher`` / ``video_teacher`` describe."""
    import time

    from maekit.data.views import evaluation_transform
    from maekit.eval.demo import pretrain, trained_and_untrained
    from maekit.eval.probe import load_trained_model, probe_pools
    from maekit.io.checkpoint import write_json
    from maekit.registry import build

    started = time.perf_counter()
    out_dir = Path(out_dir)
    _, _, image_checkpoint = pretrain(out_dir / "image_teacher", image_teacher_config, max_iters, seed, amp)
    video_cfg, _, video_checkpoint = pretrain(out_dir / "video_teacher", video_teacher_config, max_iters, seed, amp)
    cfg, final_loss, checkpoint = pretrain(out_dir, config, max_iters, seed, amp, overrides={
        "model.image_teacher.checkpoint": str(image_checkpoint), "model.video_teacher.checkpoint": str(video_checkpoint)})

    train_set, test_set = build("dataset", cfg.probe.train), build("dataset", cfg.probe.test)
    transform = evaluation_transform(train_set, cfg.data.get("transform"), cfg.get("eval_transform"))
    models = {**trained_and_untrained(cfg.model, checkpoint, seed),
              "videomae_teacher": load_trained_model(video_cfg.model, video_checkpoint)}
    metrics: dict[str, Any] = {}
    for name, model in models.items():
        scores = probe_pools(model, train_set, test_set, transform, ("mean",))["mean"]
        metrics[f"probe_accuracy_{name}"] = scores["linear_probe_accuracy"]
        metrics[f"knn_accuracy_{name}"] = scores["knn_accuracy"]
    metrics.update({"probe_features": "mean-pooled encoder tokens", "final_loss": final_loss,
                    "iterations": int(cfg.schedule.max_iters), "seconds": round(time.perf_counter() - started, 1),
                    "config": config, "seed": seed, "checkpoint": str(checkpoint),
                    "teachers": {"image": str(image_checkpoint), "video": str(video_checkpoint)}})
    write_json(out_dir / "metrics.json", metrics)
    log("linear probe: MVD {probe_accuracy_pretrained:.3f} vs random init {probe_accuracy_random_init:.3f} vs VideoMAE "
        "teacher {probe_accuracy_videomae_teacher:.3f}; k-NN {knn_accuracy_pretrained:.3f} vs {knn_accuracy_random_init:.3f} "
        "vs {knn_accuracy_videomae_teacher:.3f}; {seconds} s".format(**metrics))
    return metrics
