"""``maekit demo amt`` / ``attmask`` / ``mra`` (and ``attnmask``: all three) on scikit-learn's digits.

- ``amt``: AMT and MAE with random masking on the same raw-pixel target, same encoder, data and
  budget (``mra_mae_demo_digits`` is that MAE), each linear-probed and k-NN'd against its random
  init; pictures: input | attention | masked + thrown | reconstruction.
- ``attmask``: AttMask-High and the same iBOT run with random masks at the same counts (mode
  "random"), each against its random init; pictures: input | teacher attention | masked.
- ``mra``: an MAE augmentor trained on the unlabelled training digits; then a classifier trained from
  random init on 10 labels per class without and with MRA (``seeds`` runs each), accuracy on the
  test split and on the test split with a random 12×12 square blanked per image (seeded by
  image). Pictures: input | attention | kept patches | MRA output.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["run_amt_demo", "run_attmask_demo", "run_mra_demo", "run_attnmask_demo", "OccludedImages"]


def _beside(out_dir: Path, runs: dict[str, tuple[str, dict[str, Any] | None]], max_iters: int | None, seed: int,
            amp: str, log: Any) -> dict[str, Any]:
    """Core's demo for each named (config, overrides); every figure prefixed by the run's name."""
    from maekit.eval.demo import run_demo

    metrics: dict[str, Any] = {}
    for name, (config, overrides) in runs.items():
        found = run_demo(out_dir / name, config, max_iters, seed, amp, log, overrides=overrides)
        metrics.update({f"{name}_{key}": value for key, value in found.items()
                        if "accuracy" in key or key in ("final_loss", "seconds", "reconstructions")})
    log("linear probe (random init in brackets): " + "; ".join(
        f"{name} {metrics[f'{name}_probe_accuracy_pretrained']:.3f} ({metrics[f'{name}_probe_accuracy_random_init']:.3f})"
        for name in runs))
    return metrics


def run_amt_demo(out_dir: str | Path, config: str = "amt_demo_digits", max_iters: int | None = None, seed: int = 0,
                 amp: str = "off", log: Any = print) -> dict[str, Any]:
    """AMT beside MAE with random masking on the same target and budget (module docstring)."""
    from maekit.io.checkpoint import write_json

    started, out_dir = time.perf_counter(), Path(out_dir)
    metrics = _beside(out_dir, {"amt": (config, None), "random_masking": ("mra_mae_demo_digits", None)},
                      max_iters, seed, amp, log)
    metrics.update(seed=seed, seconds=round(time.perf_counter() - started, 1))
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def run_attmask_demo(out_dir: str | Path, config: str = "attmask_demo_digits", max_iters: int | None = None,
                     seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """AttMask-High beside the same run with random masks (module docstring)."""
    from maekit.io.checkpoint import write_json

    started, out_dir = time.perf_counter(), Path(out_dir)
    metrics = _beside(out_dir, {"attmask": (config, None), "random_masking": (config, {"model.mode": "random"})},
                      max_iters, seed, amp, log)
    metrics.update(seed=seed, seconds=round(time.perf_counter() - started, 1))
    write_json(out_dir / "metrics.json", metrics)
    return metrics


class OccludedImages(Dataset):
    """``dataset``'s images with a ``size``×``size`` square set to 0 (the digits' background) at a
    position drawn per image from (``seed``, index): the same occlusion every time."""

    def __init__(self, dataset: Any, size: int = 12, seed: int = 0) -> None:
        self.dataset, self.size, self.seed = dataset, size, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from maekit.data.views import mix_seed

        sample = self.dataset[index]
        image = sample["inputs"].clone()
        height, width = image.shape[-2:]
        generator = torch.Generator().manual_seed(mix_seed(self.seed, index))
        top = int(torch.randint(0, height - self.size + 1, (), generator=generator))
        left = int(torch.randint(0, width - self.size + 1, (), generator=generator))
        image[..., top: top + self.size, left: left + self.size] = 0.0
        return {**sample, "inputs": image}


def _augmentor_panels(classifier: Any, images: torch.Tensor, mean: Any, std: Any) -> list[list[Any]]:
    """input | attention | kept patches | MRA output for each image (the coin forced to augment)."""
    from maekit.eval.visualize import denormalised_panels, patch_map_panels

    augmentor = classifier.augmentor
    mae = augmentor.mae
    tokens = mae.tokenize(images)
    noise = torch.zeros(len(images), tokens.num_tokens + 1)  # coin 0 < p: every image augmented
    output, _ = augmentor(images, noise)
    scores, mask = augmentor.choose(tokens, noise[:, :-1])
    removed = mask.masked.unsqueeze(-1).to(tokens.values.dtype)
    unpatchify = mae.patchifier.unpatchify
    kept = denormalised_panels(unpatchify(tokens.values * (1 - removed), tokens.meta), mean, std,
                               unpatchify(removed.expand_as(tokens.values), tokens.meta))
    maps = patch_map_panels(scores, tuple(tokens.meta["grid_size"]), images.shape[-2:])
    return [list(row) for row in zip(denormalised_panels(images, mean, std), maps, kept,
                                     denormalised_panels(output, mean, std))]


def run_mra_demo(out_dir: str | Path, config: str = "mra_classifier_demo_digits", max_iters: int | None = None,
                 seed: int = 0, amp: str = "off", log: Any = print, seeds: int = 3,
                 augmentor_config: str = "mra_mae_demo_digits") -> dict[str, Any]:
    """The MRA augmentor, then the classifier without and with it over ``seeds`` seeds (module docstring)."""
    from maekit.data.views import evaluation_transform
    from maekit.engine import load_config, train
    from maekit.engine.hooks import method_of
    from maekit.eval.demo import pretrain
    from maekit.eval.finetune import classification_accuracy
    from maekit.eval.visualize import PanelTitles, save_grid
    from maekit.io.checkpoint import write_json
    from maekit.registry import build

    started, out_dir = time.perf_counter(), Path(out_dir)
    _, augmentor_loss, checkpoint = pretrain(out_dir / "augmentor", augmentor_config, max_iters, seed, amp)
    log(f"augmentor MAE trained (final loss {augmentor_loss:.4f}): {checkpoint}")
    base = load_config(config)
    test_set = build("dataset", dict(type="digits", split="test", size=32, channels=1))
    transform = evaluation_transform(test_set, base.data.get("transform"))
    occluded = OccludedImages(test_set, size=12, seed=seed)
    runs: dict[str, dict[str, list[float]]] = {}
    classifier: Any = None
    for variant in ("without_mra", "with_mra"):
        runs[variant] = {"accuracy": [], "occluded_accuracy": []}
        for offset in range(seeds):
            overrides: dict[str, Any] = {"seed": seed + offset}
            if max_iters is not None:
                overrides.update({"schedule.max_iters": max_iters, "schedule.warmup_iters": max(1, max_iters // 10),
                                  "checkpoint_interval": max_iters})
            if variant == "with_mra":
                overrides["model.augmentor"] = {"config": augmentor_config, "checkpoint": str(checkpoint)}
            runner = train(config, out_dir / variant / f"seed{seed + offset}", amp=amp, device="cpu", overrides=overrides)
            classifier = method_of(runner).eval()
            runs[variant]["accuracy"].append(classification_accuracy(classifier, test_set, transform))
            runs[variant]["occluded_accuracy"].append(classification_accuracy(classifier, occluded, transform))
    metrics: dict[str, Any] = {"seed": seed, "seeds": seeds, "augmentor_final_loss": augmentor_loss}
    for variant, figures in runs.items():
        for name, values in figures.items():
            metrics[f"{variant}_{name}"] = statistics.fmean(values)
            metrics[f"{variant}_{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            metrics[f"{variant}_{name}_runs"] = values
    images = torch.stack([transform(test_set[i]["inputs"]) for i in range(8)])
    panels = _augmentor_panels(classifier, images, transform.mean, transform.std)
    metrics["picture"] = str(save_grid(panels, out_dir / "mra.png", scale=4,
                                       titles=PanelTitles(columns=("input", "attention", "kept (most attended)", "MRA output"))))
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out_dir / "metrics.json", metrics)
    log(f"test accuracy without MRA {metrics['without_mra_accuracy']:.3f} ± {metrics['without_mra_accuracy_std']:.3f}, "
        f"with MRA {metrics['with_mra_accuracy']:.3f} ± {metrics['with_mra_accuracy_std']:.3f}; occluded: without "
        f"{metrics['without_mra_occluded_accuracy']:.3f}, with {metrics['with_mra_occluded_accuracy']:.3f} ({seeds} seeds)")
    return metrics


def run_attnmask_demo(out_dir: str | Path, max_iters: int | None = None, seed: int = 0, amp: str = "off",
                      log: Any = print) -> dict[str, Any]:
    """All three demos, in ``out_dir/amt``, ``attmask`` and ``mra``; one ``metrics.json``."""
    from maekit.io.checkpoint import write_json

    out_dir = Path(out_dir)
    metrics: dict[str, Any] = {}
    for name, run in (("amt", run_amt_demo), ("attmask", run_attmask_demo), ("mra", run_mra_demo)):
        found = run(out_dir / name, max_iters=max_iters, seed=seed, amp=amp, log=log)
        metrics.update({f"{name}/{key}": value for key, value in found.items()})
    write_json(out_dir / "metrics.json", metrics)
    return metrics
