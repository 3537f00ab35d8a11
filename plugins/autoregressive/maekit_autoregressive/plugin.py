"""The maekit hooks of maekit-autoregressive. Components are registered by dotted path, so listing
them imports neither torch nor this plugin's modules."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "igpt", "maekit_autoregressive.igpt:igpt"),
    ("model", "saim", "maekit_autoregressive.saim:saim"),
    ("tokenizer", "palette", "maekit_autoregressive.palette:PaletteTokenizer"),
    ("patchifier", "palette_pixels", "maekit_autoregressive.palette:PalettePixels"),
    ("encoder", "gpt_encoder", "maekit_autoregressive.igpt:GPTEncoder"),
    ("masker", "random_order", "maekit_autoregressive.saim:RandomOrderMasker"),
    ("decoder", "saim_query_stream", "maekit_autoregressive.saim:QueryStreamDecoder"),
    ("target", "blurred_norm_pixels", "maekit_autoregressive.saim:BlurredNormPixelTarget"),
]

maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    # iGPT's demo is core's generic one on its config (its model draws the completions picture)
    demos={"igpt": "igpt_demo_digits", "saim": "maekit_autoregressive.demo:run_saim_demo"},
)
