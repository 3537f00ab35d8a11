"""The linear probe's logistic-regression fit with BLAS at its default thread count against one
BLAS thread (what ``maekit.eval.probe.linear_probe`` does), side by side in one process on the same
features (alternating, median), with the accuracy each reaches.

Features: frozen mean-pooled tokens of the untrained demo encoder (``mae_demo_digits``) on
Fashion-MNIST when Debian's files are there (``.ci/setup`` installs them), else digits — the
shapes a probe meets in ``maekit demo`` and ``maekit compare``.

    python benchmarks/probe_fit.py --train 2000 --test 500
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, machine_description  # noqa: E402


def features(train: int, test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    from maekit import plugins
    from maekit.data.idx import FASHION_MNIST_ROOT
    from maekit.eval.probe import extract_features
    from maekit.registry import build

    plugins.load_plugins()
    source = "idx_images" if Path(FASHION_MNIST_ROOT).is_dir() else "digits"
    limits = (dict(limit=train), dict(limit=test)) if source == "idx_images" else ({}, {})
    torch.manual_seed(0)
    model = build("model", dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=4,
                                in_chans=1, encoder=dict(embed_dim=128, depth=4, num_heads=4), decoder_embed_dim=64,
                                decoder_depth=2, decoder_num_heads=4)).eval()
    transform = build("transform", dict(type="eval_transform", size=32, mean=(0.5,), std=(0.5,)))
    sets = [build("dataset", dict(type=source, split=split, size=32, channels=1, **limit))
            for split, limit in (("train", limits[0]), ("test", limits[1]))]
    (train_x, train_y), (test_x, test_y) = (extract_features(model, s, transform, pool="mean") for s in sets)
    return train_x, train_y, test_x, test_y, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_info, threadpool_limits

    train_x, train_y, test_x, test_y, source = features(args.train, args.test)
    accuracy: dict[str, float] = {}

    def fit(name: str, blas_threads: int | None) -> None:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            classifier.fit(train_x, train_y)
        accuracy[name] = float(classifier.score(test_x, test_y))

    blas = [f"{p['internal_api']}×{p['num_threads']}" for p in threadpool_info() if p["user_api"] == "blas"]
    contenders = {"default BLAS threads": lambda: fit("default BLAS threads", None),
                  "one BLAS thread": lambda: fit("one BLAS thread", 1)}
    seconds = alternating_medians(contenders, args.repeats)
    ratio = seconds["default BLAS threads"] / seconds["one BLAS thread"]
    report = {"machine": machine_description(), "blas": blas, "features": f"{source}: {train_x.shape} train, "
              f"{test_x.shape} test", "median_seconds": seconds, "accuracy": accuracy, "speed_up": ratio}
    print(f"{report['features']}; BLAS libraries: {', '.join(blas)}")
    for name in contenders:
        print(f"{name:>22}: {seconds[name]:.3f} s per fit, accuracy {accuracy[name]:.4f}")
    print(f"one BLAS thread is {ratio:.1f}x faster")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
