"""``maekit zeroshot`` and ``maekit retrieval``: FLIP's evaluations from the command line.

Both read the config's ``zeroshot``/``retrieval`` section (override any key with
``--cfg-options``); ``--checkpoint`` takes a ``maekit train`` checkpoint, maekit weights, or with
``--open-clip`` an open_clip ViT CLIP state dict (.pt/.bin/.safetensors).
"""
from __future__ import annotations

from typing import Any

import click

from maekit.cli.support import cfg_options_option, fail, load_command_config, write_metrics

__all__ = ["zeroshot", "retrieval", "load_flip"]


def load_flip(model_cfg: dict, checkpoint: str | None, open_clip: bool = False):
    """The configured FLIP with weights: maekit's (any layout core reads) or open_clip's."""
    from maekit.eval.probe import load_trained_model

    if not open_clip:
        return load_trained_model(model_cfg, checkpoint)
    from maekit.io.checkpoint import load_state_dict
    from maekit.registry import build
    from maekit_flip.interop import open_clip_to_maekit

    if checkpoint is None:
        raise ValueError("--open-clip needs --checkpoint (an open_clip state dict)")
    model = build("model", model_cfg)
    state = {k.removeprefix("module."): v for k, v in load_state_dict(checkpoint).items()}  # DDP-saved too
    try:
        model.load_state_dict(open_clip_to_maekit(state))
    except (KeyError, RuntimeError) as error:
        raise ValueError(f"{checkpoint}: does not fit the configured FLIP ({error}); build it with "
                         f"pool='cls', fixed_pos_embed=False and the open_clip model's sizes") from None
    return model.eval()


def _section(cfg: Any, name: str, config: str) -> dict:
    section = cfg.get(name)
    if not section or "dataset" not in section:
        fail(f"config {config} has no '{name}' section with a 'dataset' (see maekit-flip's README)")
    return dict(section)


checkpoint_option = click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
                                 help="Trained weights (default: random init).")
open_clip_option = click.option("--open-clip", "open_clip", is_flag=True,
                                help="The checkpoint is an open_clip ViT CLIP state dict.")
out_option = click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")


@click.command("zeroshot")
@click.argument("config")
@checkpoint_option
@open_clip_option
@out_option
@cfg_options_option
def zeroshot(config: str, checkpoint: str | None, open_clip: bool, out: str | None,
             cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Zero-shot classification (FLIP/CLIP): class names × prompt templates → class embeddings;
    prints top-1/top-5 on the config's zeroshot.dataset."""
    from maekit.data.views import EvalTransform
    from maekit.registry import build
    from maekit_flip.evaluate import zero_shot_accuracy

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    section = _section(cfg, "zeroshot", config)
    try:
        dataset = build("dataset", section["dataset"])
        classnames = section.get("classnames") or getattr(dataset, "classes", None)
        if not classnames:
            raise ValueError("zeroshot.classnames is not set and the dataset names no classes")
        templates = section.get("templates") or ["a photo of a {}."]
        transform = EvalTransform.matching(dataset, (cfg.get("data") or {}).get("transform"))
        model = load_flip(cfg.model, checkpoint, open_clip)
        metrics = zero_shot_accuracy(model, dataset, list(classnames), list(templates), transform,
                                     tokenizer=section.get("tokenizer", "open_clip"))
    except (ValueError, KeyError, RuntimeError) as error:
        fail(str(error))
    write_metrics({**metrics, "checkpoint": checkpoint}, out)


@click.command("retrieval")
@click.argument("config")
@checkpoint_option
@open_clip_option
@out_option
@cfg_options_option
def retrieval(config: str, checkpoint: str | None, open_clip: bool, out: str | None,
              cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Image→text and text→image recall@1/5/10 on the config's retrieval.dataset."""
    from maekit.data.views import EvalTransform
    from maekit.registry import build
    from maekit_flip.evaluate import retrieval_recall

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    section = _section(cfg, "retrieval", config)
    try:
        dataset = build("dataset", section["dataset"])
        transform = EvalTransform.matching(dataset, (cfg.get("data") or {}).get("transform"))
        model = load_flip(cfg.model, checkpoint, open_clip)
        metrics = retrieval_recall(model, dataset, transform, ks=tuple(section.get("ks", (1, 5, 10))))
    except (ValueError, KeyError, RuntimeError) as error:
        fail(str(error))
    write_metrics({**metrics, "checkpoint": checkpoint}, out)
