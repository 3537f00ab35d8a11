"""Test-time training throughput: core's ``adapt_and_predict`` adapting several samples at once
(per-sample weights under ``torch.func.vmap``) against one sample at a time through the same code,
and against the plain loop a user would write (deep copy of the model + ``torch.optim.SGD``, as the
TTT-MAE reference does). The model is maekit-ttt's digits TTT-MAE (16 tokens, 4 + 2 blocks) at its
demo setting (32 copies); figures are seconds per sample-step, measured side by side (alternating,
median), with the batched/sequential ratios.

    python benchmarks/test_time.py --quick
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, machine_description  # noqa: E402


def plain_loop(model: torch.nn.Module, images: torch.Tensor, steps: int, copies: int, lr: float, names: list[str]) -> None:
    """The reference's loop: reset by deep copy, SGD on the trainable set, predict after every step."""
    for index, image in enumerate(images):
        work = copy.deepcopy(model)
        chosen = set(names)
        optimizer = torch.optim.SGD([p for n, p in work.named_parameters() if n in chosen], lr=lr, momentum=0.9)
        generator = torch.Generator().manual_seed(index)
        for _ in range(steps):
            work.train()
            optimizer.zero_grad()
            work.test_time_loss(work.test_time_views(image, copies, generator)).backward()
            optimizer.step()
            work.eval()
            with torch.no_grad():
                work.classify({"inputs": image[None]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--copies", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 samples, 1 step, 4 copies, 1 repeat")
    parser.add_argument("--out", help="Write the figures as JSON here too.")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.steps, args.copies, args.repeats = 2, 1, 4, 1

    from maekit.engine import load_config
    from maekit.eval.test_time import TestTimeSettings, adapt_and_predict, select_trainable
    from maekit.registry import build

    cfg = load_config("ttt_mae_digits")
    torch.manual_seed(0)
    model = build("model", cfg.model)
    images = torch.rand(args.samples, 1, 32, 32)
    base = {**cfg.ttt, "steps": args.steps, "copies": args.copies}

    def adapt(samples_per_batch: int):
        settings = TestTimeSettings.from_config({**base, "samples_per_batch": samples_per_batch})
        return lambda: adapt_and_predict(model, images, settings)

    names = select_trainable(model, cfg.ttt["trainable"])
    contenders = {f"adapt_and_predict, {args.samples} samples at once": adapt(args.samples),
                  "adapt_and_predict, one sample at a time": adapt(1),
                  "plain loop (deepcopy + torch.optim.SGD)": lambda: plain_loop(model, images, args.steps, args.copies,
                                                                                cfg.ttt["lr"], names)}
    seconds = alternating_medians(contenders, args.repeats)
    per_step = {name: value / (args.samples * args.steps) for name, value in seconds.items()}
    names_in_order = list(per_step)
    report = {"machine": machine_description(), "samples": args.samples, "steps": args.steps, "copies": args.copies,
              "seconds_per_sample_step": per_step,
              "ratio one-at-a-time / batched": per_step[names_in_order[1]] / per_step[names_in_order[0]],
              "ratio plain loop / batched": per_step[names_in_order[2]] / per_step[names_in_order[0]]}
    for name, value in per_step.items():
        print(f"{name:45s} {1000 * value:8.1f} ms per sample-step")
    print(f"ratio one-at-a-time / batched: {report['ratio one-at-a-time / batched']:.2f}; "
          f"ratio plain loop / batched: {report['ratio plain loop / batched']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
