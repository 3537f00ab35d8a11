"""``maekit demo beit``: on scikit-learn's digits, a VQ tokenizer is trained first, then BEiT
predicts its codes; core's MAE runs at the same budget; PeCo's tokenizer is then trained with a
perceptual term from that MAE encoder and BEiT pre-trains on it. Each encoder is linear-probed and
k-NN-classified against the same architecture untrained (core's demo does the evaluation)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["run_beit_demo"]

#: the figures of each run copied into the demo's summary
FIGURES = ("probe_accuracy_pretrained", "probe_accuracy_random_init", "knn_accuracy_pretrained", "knn_accuracy_random_init",
           "cls_probe_accuracy_pretrained", "final_loss", "seconds")


def run_beit_demo(out_dir: str | Path, max_iters: int | None = None, seed: int = 0, amp: str = "off",
                  log: Any = print, tokenizer_steps: int | None = None, probe: dict | None = None) -> dict[str, Any]:
    """Run the four steps into ``out_dir`` (``vq_tokenizer.safetensors``, ``beit/``, ``mae/``,
    ``peco_tokenizer.safetensors``, ``peco/``) and write ``metrics.json``. ``max_iters`` shortens
    every pre-training alike; ``tokenizer_steps`` the tokenizers' training and ``probe`` replaces
    every run's probe section (a smoke test)."""
    from maekit.engine import load_config
    from maekit.eval.demo import run_demo
    from maekit.io.checkpoint import write_json
    from maekit_beit.fit import train_tokenizer

    started, out_dir = time.perf_counter(), Path(out_dir)
    steps = {} if tokenizer_steps is None else {"model.tokenizer.fit_steps": tokenizer_steps}
    probing = {} if probe is None else {"probe": probe}

    vq_file = out_dir / "vq_tokenizer.safetensors"
    vq = train_tokenizer(load_config("beit_demo_digits", steps), vq_file, seed, log)
    beit = run_demo(out_dir / "beit", "beit_demo_digits", max_iters, seed, amp, log,
                    overrides={**probing, "model.tokenizer.weights": str(vq_file)})
    mae = run_demo(out_dir / "mae", "mae_demo_digits", max_iters, seed, amp, log, overrides=probing)

    perceptual = {"model.tokenizer.perceptual.checkpoint": mae["checkpoint"]}
    peco_file = out_dir / "peco_tokenizer.safetensors"
    peco_vq = train_tokenizer(load_config("peco_demo_digits", {**steps, **perceptual}), peco_file, seed, log)
    peco = run_demo(out_dir / "peco", "peco_demo_digits", max_iters, seed, amp, log,
                    overrides={**probing, **perceptual, "model.tokenizer.weights": str(peco_file)})

    metrics: dict[str, Any] = {
        "data": "scikit-learn digits, 32×32 grey; train split for the tokenizers and pre-training, probes on the test split",
        **{f"{name}_{key}": run[key] for name, run in (("beit", beit), ("mae", mae), ("peco", peco))
           for key in FIGURES if key in run},
        "vq_tokenizer": vq, "peco_tokenizer": peco_vq,
        "pictures": {name: run["reconstructions"] for name, run in (("beit", beit), ("mae", mae), ("peco", peco))},
        "iterations": beit["iterations"], "seed": seed, "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(out_dir / "metrics.json", metrics)
    for name in ("beit", "peco"):
        log(f"{name}: linear probe {metrics[f'{name}_probe_accuracy_pretrained']:.3f} vs random init "
            f"{metrics[f'{name}_probe_accuracy_random_init']:.3f} and MAE {metrics['mae_probe_accuracy_pretrained']:.3f} "
            f"at the same budget; k-NN {metrics[f'{name}_knn_accuracy_pretrained']:.3f} vs "
            f"{metrics[f'{name}_knn_accuracy_random_init']:.3f} and MAE {metrics['mae_knn_accuracy_pretrained']:.3f}")
    return metrics
