"""iGPT (Chen et al., ICML 2020): a GPT-2 over palette pixels, trained to predict each pixel from
the ones before it in raster order (``objective="autoregressive"``) or the pixels hidden with
probability 0.15 from all the others (``objective="bert"``).

The whole model is core's pass: palette pixels → mask (none, or BERT's Bernoulli) → the GPT sees
every pixel (hidden ones' embeddings zeroed) → the output table gives logits over the palette →
cross-entropy per image, then over the batch. Layout and initialisation follow openai/image-gpt's
``src/model.py``; transformers' ``ImageGPTForCausalImageModeling`` computes the same logits on
copied weights (:func:`to_transformers`, tested).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from maekit.eval.visualize import PanelTitles
from maekit.model import MaskTokenModel
from maekit.nn.attention import attend
from maekit.nn.encoder import TokenEncoder
from maekit.nn.patchify import as_pair
from maekit.structures import Mask, Tokens
from maekit_autoregressive.palette import PalettePixels

__all__ = ["GPTBlock", "GPTEncoder", "IGPT", "igpt", "OBJECTIVES", "to_transformers", "from_transformers"]

OBJECTIVES = ("autoregressive", "bert")


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """iGPT's activation ``gelu2``: x·σ(1.702x)."""
    return x * torch.sigmoid(1.702 * x)


class GPTAttention(nn.Module):
    """Multi-head attention without biases, iGPT's names (``q_proj``, ``k_proj``, ``v_proj``,
    ``c_proj``); iGPT's per-head [H, D/H, D] tables are these matrices' rows head by head."""

    def __init__(self, dim: int, num_heads: int, causal: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"iGPT width {dim} must be divisible by num_heads {num_heads}")
        self.num_heads, self.causal = num_heads, causal
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.c_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = (proj(x).view(batch, length, self.num_heads, -1).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        # scaled by head_dim ** -0.5, as iGPT's rsqrt(v.shape[-1]); causal as a flag, not an N×N mask,
        # so fused attention kernels apply
        out = attend(q, k, v, attn_mask, is_causal=self.causal and attn_mask is None)
        return self.c_proj(out.transpose(1, 2).reshape(batch, length, dim))


class GPTMLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden, bias=False)
        self.c_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(quick_gelu(self.c_fc(x)))


class GPTBlock(nn.Module):
    """iGPT's pre-norm block: norms that scale without centring or bias (x·rsqrt(mean(x²) + 1e-5)·g,
    ``nn.RMSNorm``), attention and MLP (4× wide) without biases."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-5,
                 causal: bool = False) -> None:
        super().__init__()
        self.ln_1 = nn.RMSNorm(dim, eps=norm_eps)
        self.attn = GPTAttention(dim, num_heads, causal)
        self.ln_2 = nn.RMSNorm(dim, eps=norm_eps)
        self.mlp = GPTMLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))


class GPTEncoder(TokenEncoder):
    """iGPT's transformer over palette ids (tokens holding ids, :class:`PalettePixels`).

    Embedding: ``wte[id]`` (+ ``wpe`` by raster position). Autoregressive: the sequence is shifted
    right behind the learned ``sos`` vector (position i holds pixel i − 1) and attention is causal,
    so output i predicts pixel i from the ones before it. BERT: the hidden pixels' embeddings are
    zeroed (no mask vector; their positions are still added) and attention is full. No prefix
    tokens; ``norm`` is the final ``ln_f``.

    Init as ``src/model.py``: wte N(0, .02), wpe N(0, .01), sos N(0, .02); q/k/v N(0, 1/√D), the
    attention output N(0, 1/√(D·L)), MLP N(0, .02); norms' gains 1.
    """

    num_prefix_tokens = 0

    def __init__(self, vocab_size: int = 512, grid_size: int | Sequence[int] = 32, embed_dim: int = 512,
                 depth: int = 24, num_heads: int = 8, mlp_ratio: float = 4.0, objective: str = "autoregressive",
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"iGPT objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        self.objective, self.embed_dim = objective, embed_dim
        self.grid_size: tuple[int, int] = as_pair(grid_size, "grid_size")
        self.wte = nn.Embedding(vocab_size, embed_dim)
        self.wpe = nn.Embedding(self.grid_size[0] * self.grid_size[1], embed_dim)
        # only the autoregressive objective has a start vector (BERT's would get no gradient: DDP refuses that)
        self.sos = nn.Parameter(torch.zeros(embed_dim)) if self.causal else None
        self.norm_pre = nn.Identity()
        self.blocks = nn.ModuleList(GPTBlock(embed_dim, num_heads, mlp_ratio, norm_eps, self.causal) for _ in range(depth))
        self.norm = nn.RMSNorm(embed_dim, eps=norm_eps)
        self.reset_parameters()

    @property
    def causal(self) -> bool:
        return self.objective == "autoregressive"

    def reset_parameters(self) -> None:
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        if self.sos is not None:
            nn.init.normal_(self.sos, std=0.02)
        depth, dim = len(self.blocks), self.embed_dim
        for module in self.blocks.modules():
            if isinstance(module, GPTAttention):
                for proj in (module.q_proj, module.k_proj, module.v_proj):
                    nn.init.normal_(proj.weight, std=1 / math.sqrt(dim))
                nn.init.normal_(module.c_proj.weight, std=1 / math.sqrt(dim * max(depth, 1)))
            elif isinstance(module, GPTMLP):
                nn.init.normal_(module.c_fc.weight, std=0.02)
                nn.init.normal_(module.c_proj.weight, std=0.02)

    def embed_tokens(self, values: torch.Tensor) -> torch.Tensor:
        if values.is_floating_point() or values.shape[-1] != 1:
            raise ValueError(f"the iGPT encoder embeds palette ids (B×N×1 integers), got {values.dtype} "
                             f"{tuple(values.shape)}")
        return self.wte(values[..., 0].long())

    def position_embedding(self, tokens: Tokens) -> torch.Tensor:
        height, width = self.grid_size
        if tuple(tokens.meta.get("grid_size", self.grid_size)) != self.grid_size:
            raise ValueError(f"this iGPT was built for {height}×{width} pixels; got a {tokens.meta['grid_size']} "
                             f"grid (resize the images to the model's resolution)")
        return self.wpe((tokens.coords[..., 0] * width + tokens.coords[..., 1]).long())

    def embed(self, tokens: Tokens) -> torch.Tensor:
        x = self.embed_tokens(tokens.values)
        masked = tokens.meta.get("masked")
        if masked is not None:  # BERT: hidden pixels' embeddings multiplied by 0
            x = x * (1 - masked.to(x.dtype)).unsqueeze(-1)
        if self.sos is not None:  # [sos] + pixels[:-1]: with causal attention, output i sees pixels before i only
            x = torch.cat([self.sos.to(x.dtype).expand(x.shape[0], 1, -1), x[:, :-1]], dim=1)
        return x + self.position_embedding(tokens)

    def prefix_tokens(self) -> torch.Tensor:
        return self.wte.weight.new_zeros(1, 0, self.embed_dim)

    def no_weight_decay(self) -> set[str]:
        return {"wte.weight", "wpe.weight"} | ({"sos"} if self.sos is not None else set())


class IGPT(MaskTokenModel):
    """iGPT as core's pass (see the module). ``encode`` gives the final-normed features;
    ``maekit probe --layer L`` reads a middle block, as the paper probes. :meth:`complete` samples
    the rest of an image pixel by pixel; :meth:`panels` draws half-images and their completions
    (autoregressive) or hidden pixels and their predictions (BERT)."""

    picture_scale = 6

    @property
    def objective(self) -> str:
        return self.encoder.objective  # type: ignore[return-value]

    def logits(self, tokens: Tokens) -> torch.Tensor:
        """Logits B×N×V over the palette for every position (nothing hidden)."""
        keep_all = Mask.keep_all(tokens.batch_size, tokens.num_tokens, tokens.values.device)
        return self.decoder(self.encoder(tokens), keep_all, tokens)

    @torch.no_grad()
    def complete(self, ids: torch.Tensor, given: int, generator: torch.Generator | None = None,
                 temperature: float = 1.0) -> torch.Tensor:
        """Ids B×H×W with the first ``given`` pixels (raster order) kept and the rest sampled one at a
        time from the model (autoregressive objective only)."""
        if self.objective != "autoregressive":
            raise ValueError("only an autoregressive iGPT completes images; this one was trained with the BERT objective")
        ids = ids.clone()
        flat = ids.view(ids.shape[0], -1)
        if not 0 <= given <= flat.shape[1]:
            raise ValueError(f"given must be a pixel count in 0..{flat.shape[1]}, got {given}")
        grid = PalettePixels.tokens_of(ids, int(getattr(self.patchifier.tokenizer, "channels", 3)))
        for position in range(given, flat.shape[1]):
            # attention is causal: the pixels up to this one give the same logits here as the whole image
            prefix = Tokens(values=flat[:, : position + 1, None], coords=grid.coords[:, : position + 1], meta=grid.meta)
            logits = self.logits(prefix)[:, position].float() / temperature
            flat[:, position] = torch.multinomial(logits.softmax(-1).cpu(), 1, generator=generator)[:, 0].to(ids)
        return ids

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0,
               completions: int = 3) -> list[list[Any]]:
        """Autoregressive: the top half given (bottom grey) | ``completions`` samples | the image in
        the palette's colours. BERT: hidden pixels grey | the arg-max predictions filled in | the
        image in the palette's colours. Labelled by :meth:`panel_titles`."""
        from maekit.eval.visualize import denormalised_panels
        from maekit.model import seeded_noise

        self.eval()
        tokenizer = self.patchifier.tokenizer
        ids = tokenizer.encode(images)
        quantised = tokenizer.decode(ids)
        height, width = ids.shape[1:]
        if self.objective == "autoregressive":
            given = (height // 2) * width
            lower = torch.zeros(1, 1, height, width, dtype=torch.bool)
            lower[..., height // 2:, :] = True
            generator = torch.Generator().manual_seed(seed)
            columns = [denormalised_panels(quantised, mean, std, lower)]
            samples = self.complete(ids.repeat(completions, 1, 1), given, generator)  # all completions in one batch
            columns += [denormalised_panels(tokenizer.decode(sample), mean, std) for sample in samples.split(len(images))]
        else:
            out = self.run_steps(images, noise=seeded_noise(seed))
            hidden = out.mask.masked.bool().view(-1, 1, height, width)
            predicted = torch.where(out.mask.masked.bool(), out.pred.argmax(-1), ids.flatten(1)).view_as(ids)
            columns = [denormalised_panels(quantised, mean, std, hidden),
                       denormalised_panels(tokenizer.decode(predicted), mean, std)]
        columns.append(denormalised_panels(quantised, mean, std))
        return [list(row) for row in zip(*columns)]

    def panel_titles(self, completions: int = 3) -> PanelTitles:
        """The columns of :meth:`panels` with the same ``completions`` (its default, 3, for the demo
        and ``maekit visualize``)."""
        if self.objective == "autoregressive":
            samples = tuple(f"completion {i + 1}" for i in range(completions))
            return PanelTitles(columns=("top half given", *samples, "input (palette colours)"))
        return PanelTitles(columns=("masked", "reconstruction + visible", "input (palette colours)"))


def igpt(objective: str = "autoregressive", img_size: int | Sequence[int] = 32, channels: int = 3,
         num_colors: int = 512, embed_dim: int = 512, depth: int = 24, num_heads: int = 8, mlp_ratio: float = 4.0,
         bert_mask_probability: float = 0.15, palette: Mapping[str, Any] | None = None) -> IGPT:
    """iGPT. Defaults: iGPT-S (24 blocks, 512 wide, 8 heads) at 32×32 with a 512-colour palette;
    iGPT-M is 36/1024/8, iGPT-L 48/1536/16. ``palette``: further :class:`PaletteTokenizer`
    arguments (``centres_file``, ``fit_samples``, ``fit_pixels``)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"igpt objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    tokenizer = dict(type="palette", num_colors=num_colors, channels=channels, **(palette or {}))
    bert = objective == "bert"
    return IGPT(
        patchifier=dict(type="palette_pixels", tokenizer=tokenizer),
        masker=dict(type="bernoulli_mask", probability=bert_mask_probability if bert else 0.0),
        encoder=GPTEncoder(num_colors, img_size, embed_dim, depth, num_heads, mlp_ratio, objective),
        # the untied output table wtet, initialised at zero
        decoder=dict(type="linear_head", encoder_dim=embed_dim, out_dim=num_colors, num_prefix_tokens=0, std=0.0, bias=False),
        target=dict(type="token_ids"),
        # BERT: hidden pixels only, averaged per image then over the batch; autoregressive: every pixel
        loss=dict(type="masked_cross_entropy", over="removed" if bert else "all", reduction="image_mean"),
    )


def _transformers_pairs(depth: int) -> list[tuple[str, str, bool]]:
    """(our key, transformers' ImageGPT key, transposed) for the weights both have. transformers'
    Conv1D stores (in, out); its c_attn fuses q, k, v along the output."""
    pairs = [("encoder.wpe.weight", "transformer.wpe.weight", False), ("encoder.norm.weight", "transformer.ln_f.weight", False),
             ("decoder.pred.weight", "lm_head.weight", False)]
    for i in range(depth):
        ours, theirs = f"encoder.blocks.{i}", f"transformer.h.{i}"
        pairs += [(f"{ours}.ln_1.weight", f"{theirs}.ln_1.weight", False), (f"{ours}.ln_2.weight", f"{theirs}.ln_2.weight", False),
                  (f"{ours}.attn.c_proj.weight", f"{theirs}.attn.c_proj.weight", True),
                  (f"{ours}.mlp.c_fc.weight", f"{theirs}.mlp.c_fc.weight", True),
                  (f"{ours}.mlp.c_proj.weight", f"{theirs}.mlp.c_proj.weight", True)]
    return pairs


def to_transformers(model: IGPT) -> dict[str, torch.Tensor]:
    """Our weights in transformers' ``ImageGPTForCausalImageModeling`` layout (vocab_size =
    colours + 1: the start token is ``wte``'s last row; biases, which iGPT has none of, zero)."""
    if model.objective != "autoregressive":
        raise ValueError("transformers' ImageGPT is the autoregressive iGPT; a BERT-objective model has no start token")
    state, depth = model.state_dict(), len(model.encoder.blocks)
    out = {theirs: (state[ours].T if transposed else state[ours]).clone() for ours, theirs, transposed in _transformers_pairs(depth)}
    out["transformer.wte.weight"] = torch.cat([state["encoder.wte.weight"], state["encoder.sos"][None]])
    for i in range(depth):
        qkv = torch.cat([state[f"encoder.blocks.{i}.attn.{name}_proj.weight"] for name in "qkv"])
        out[f"transformer.h.{i}.attn.c_attn.weight"] = qkv.T.clone()
        for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):  # Conv1D weights are (in, out)
            out[f"transformer.h.{i}.{name}.bias"] = torch.zeros(out[f"transformer.h.{i}.{name}.weight"].shape[1])
    return out


def from_transformers(state: Mapping[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """The encoder and output table of an ``ImageGPTForCausalImageModeling`` state dict in our
    names. iGPT has no biases: a non-zero bias is an error, not silently dropped."""
    for key, value in state.items():
        if key.endswith(".bias") and bool(value.abs().max() > 0):
            raise ValueError(f"{key}: iGPT has no biases, but this ImageGPT weight file has a non-zero one")
    out = {ours: (state[theirs].T if transposed else state[theirs]).clone() for ours, theirs, transposed in _transformers_pairs(depth)}
    out["encoder.wte.weight"], out["encoder.sos"] = state["transformer.wte.weight"][:-1].clone(), state["transformer.wte.weight"][-1].clone()
    for i in range(depth):
        q, k, v = state[f"transformer.h.{i}.attn.c_attn.weight"].T.chunk(3)
        out.update({f"encoder.blocks.{i}.attn.{name}_proj.weight": w.clone() for name, w in zip("qkv", (q, k, v))})
    return out
