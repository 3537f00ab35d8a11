"""``maekit tokenizer-train`` (train a config's tokenizer on its data), ``maekit dalle-convert``
(OpenAI's pickled DALL-E encoder → a plain state dict, once) and ``maekit beit-convert`` (BEiT
checkpoints between the official, maekit, timm and transformers layouts)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, fail, load_command_config, write_metrics

__all__ = ["tokenizer_train", "dalle_convert", "beit_convert"]


@click.command("tokenizer-train")
@click.argument("config")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the tokenizer (.safetensors).")
@click.option("--seed", default=0, show_default=True, help="Seeds the augmentation and the training.")
@cfg_options_option
def tokenizer_train(config: str, out: str, seed: int, cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Train the tokenizer of CONFIG's model (model.tokenizer, e.g. a vq or peco_vq tokenizer) on
    CONFIG's training data and write it to OUT; pre-train with it by setting
    model.tokenizer.weights=OUT."""
    from maekit_beit.fit import train_tokenizer

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    if not out.endswith(".safetensors"):
        fail(f"--out {out}: write the tokenizer as a .safetensors file")
    try:
        report = train_tokenizer(cfg, out, seed, log=click.echo)
    except ValueError as error:
        fail(str(error))
    write_metrics(report, None)


@click.command("dalle-convert")
@click.argument("pickled", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The state dict to write (.safetensors).")
def dalle_convert(pickled: str, out: str) -> None:
    """Read OpenAI's pickled DALL-E encoder (encoder.pkl) once into a plain state dict at OUT,
    with torch's weights-only unpickler and inert stand-ins for the dall_e classes (nothing in the
    file runs; anything else in it is refused). Then give tokenizer=dict(type='dall_e', weights=OUT)."""
    from maekit.io.checkpoint import save_state_dict
    from maekit_beit.dalle import DallETokenizer, convert_pickled_encoder

    if not out.endswith(".safetensors"):
        fail(f"--out {out}: write the encoder as a .safetensors file")
    try:
        state = convert_pickled_encoder(pickled)
        if "blocks.input.w" not in state or "blocks.output.conv.w" not in state:
            raise ValueError(f"{pickled}: no blocks.input.w / blocks.output.conv.w: not a DALL-E encoder")
        n_hid, vocab = state["blocks.input.w"].shape[0], state["blocks.output.conv.w"].shape[0]
        DallETokenizer(n_hid=n_hid, vocab_size=vocab).load_weights(state)  # every name and shape checked
    except ValueError as error:
        fail(str(error))
    save_state_dict(state, out, metadata={"source": "dall_e encoder.pkl"})
    click.echo(f"wrote {len(state)} tensors of the DALL-E encoder (n_hid {n_hid}, vocab {vocab}) to {out}")


@click.command("beit-convert")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "source", type=click.Choice(["unilm", "maekit"]), required=True,
              help="unilm: the official BEiT files (beit_base_patch16_224_pt22k.pth, ...); maekit: a maekit run.")
@click.option("--to", "target", type=click.Choice(["maekit", "unilm", "timm", "transformers"]), required=True)
@click.option("--per-block", is_flag=True, help="timm: copy the shared relative table into every block (fine-tuning).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The converted state dict (.safetensors or .pth).")
def beit_convert(checkpoint: str, source: str, target: str, per_block: bool, out: str) -> None:
    """Convert a BEiT CHECKPOINT between layouts (every key must be known to the source layout)."""
    from maekit.io.checkpoint import CheckpointError, load_state_dict, save_state_dict
    from maekit_beit.convert import convert_beit

    if per_block and target != "timm":
        fail(f"--per-block copies the shared table into timm's per-block layout; it needs --to timm, not --to {target}")
    try:
        converted = convert_beit(load_state_dict(checkpoint), source, target, per_block=per_block)
    except (ValueError, CheckpointError) as error:
        fail(f"{checkpoint}: {error}")
    save_state_dict(converted, out)
    write_metrics({"written": out, "tensors": len(converted), "layout": target}, None)
