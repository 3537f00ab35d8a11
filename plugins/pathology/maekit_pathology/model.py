"""MMAE: the multi-modal masked autoencoder of Ikezogwo et al. for H&E tiles (MultiMAE's
design on RGB + haematoxylin + eosin), with SD-MAE's self-distillation as a setting.

The six slots of core's ``MaskedAutoencoder``, each a registered component:

- patchifier ``mmae_patchifier``: one token grid per modality, concatenated modality by modality;
- masker ``mmae_dirichlet_masker``: a fixed visible budget split across modalities by Dirichlet;
- encoder ``mmae_encoder``: one patch embedding per modality, shared ViT blocks, a global token;
- decoder ``mmae_decoders``: one cross-attention decoder per output (rgb, norm_rgb, optionally H/E);
- target ``mmae_targets`` and loss ``mmae_loss``: masked MSE (L1 for stains) per output, summed.

Only :meth:`MMAE.auxiliary_losses` (SD-MAE's term) and the picture are the method's own code.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from maekit.eval.visualize import PanelTitles
from maekit.model import MaskedAutoencoder, seeded_noise
from maekit.nn.attention import CrossAttention
from maekit.nn.base import Decoder, Loss, Masker, NoiseSource, Patchifier, Target
from maekit.nn.encoder import TransformerEncoder, make_blocks
from maekit.nn.masking import draw_noise
from maekit.nn.patchify import as_pair, patchify, unpatchify
from maekit.nn.pos_embed import sincos_2d_table
from maekit.ops import fill_mask_tokens, gather, init_mae_weights, masked_mean, norm_pix
from maekit.structures import ForwardPass, Mask, Tokens

__all__ = ["MODALITIES", "OUTPUTS", "MultiModalPatchifier", "split_budget", "DirichletBudgetMasker",
           "MultiModalEncoder", "OutputDecoder", "OutputDecoders", "MultiModalTargets", "MultiModalLoss",
           "MMAE", "mmae"]

# (name, channels), in the order the channels of a sample's "inputs" are stacked
MODALITIES: tuple[tuple[str, int], ...] = (("rgb", 3), ("hematoxylin", 1), ("eosin", 1))
# MMAE's default outputs: pixels and per-patch normalised pixels of the RGB modality
OUTPUTS: tuple[dict[str, Any], ...] = (dict(name="rgb", source="rgb", target="pixels", loss="mse"),
                                       dict(name="norm_rgb", source="rgb", target="norm_pixels", loss="mse"))


def _check_modalities(modalities: Sequence[Sequence[Any]]) -> tuple[tuple[str, int], ...]:
    checked = tuple((str(name), int(channels)) for name, channels in modalities)
    if not checked or len({name for name, _ in checked}) != len(checked) or any(c < 1 for _, c in checked):
        raise ValueError(f"modalities must be distinct (name, channels) pairs, got {modalities!r}")
    return checked


class MultiModalPatchifier(Patchifier):
    """Splits ``inputs`` (B×C×H×W, channels stacked in ``modalities`` order) into one patch grid per
    modality and concatenates the grids modality by modality (tokens ``m·N … (m+1)·N − 1`` are
    modality ``m``). A batch with only the first modality's channels (RGB alone, as in fine-tuning
    and evaluation) gives that modality's tokens alone.

    Values are each patch's pixels in (p, q, c) order, zero-padded to the widest modality (every
    token has one width); ``coords`` are (row, column, modality index)."""

    def __init__(self, patch_size: int | tuple[int, int] = 16, modalities: Sequence[Sequence[Any]] = MODALITIES,
                 key: str = "inputs") -> None:
        super().__init__()
        self.patch_size = as_pair(patch_size, "patch_size")
        self.modalities = _check_modalities(modalities)
        self.key = key
        self.width = self.patch_size[0] * self.patch_size[1] * max(c for _, c in self.modalities)

    def present(self, channels: int) -> tuple[int, ...]:
        """The modality indices a batch with ``channels`` channels holds."""
        total = sum(c for _, c in self.modalities)
        if channels == total:
            return tuple(range(len(self.modalities)))
        if channels == self.modalities[0][1]:
            return (0,)
        names = " + ".join(f"{name} ({c})" for name, c in self.modalities)
        raise ValueError(f"'{self.key}' has {channels} channels; expected {total} ({names}) or "
                         f"{self.modalities[0][1]} ({self.modalities[0][0]} alone)")

    def forward(self, batch: Any) -> Tokens:
        images = batch[self.key] if isinstance(batch, dict) else batch
        if images.dim() != 4:
            raise ValueError(f"'{self.key}' must be B×C×H×W, got shape {tuple(images.shape)}")
        height, width = images.shape[-2:]
        (p, q) = self.patch_size
        if height % p or width % q:
            raise ValueError(f"image size {height}×{width} is not divisible by the patch size {p}×{q}")
        grid = (height // p, width // q)
        present = self.present(images.shape[1])
        starts = np.cumsum([0] + [c for _, c in self.modalities])
        rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
        values, coords = [], []
        for m in present:
            patches = patchify(images[:, starts[m]:starts[m + 1]], self.patch_size)
            values.append(F.pad(patches, (0, self.width - patches.shape[-1])))
            place = torch.stack([rows.flatten(), cols.flatten(), torch.full((grid[0] * grid[1],), m)], dim=-1)
            coords.append(place.to(images.device).expand(images.shape[0], -1, -1))
        meta = {"grid_size": grid, "patch_size": self.patch_size, "modalities": self.modalities,
                "present": present, "tokens_per_modality": grid[0] * grid[1]}
        return Tokens(values=torch.cat(values, dim=1), coords=torch.cat(coords, dim=1), meta=meta)

    def unpatchify(self, values: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        """Images B×c×H×W from one modality's tokens (B×N×(p·q·c), padding already cut)."""
        return unpatchify(values, meta["grid_size"], meta["patch_size"])


def split_budget(shares: torch.Tensor, budget: int, capacity: int) -> torch.Tensor:
    """Integer token counts per sample and modality (B×M) from Dirichlet ``shares`` (B×M): the
    largest-remainder rounding of ``shares · budget``, so every row sums to ``budget`` exactly, with
    no modality given more than its ``capacity`` tokens (any excess goes to the others)."""
    if budget > capacity * shares.shape[1]:
        raise ValueError(f"visible budget {budget} exceeds the {capacity * shares.shape[1]} tokens of the batch")
    counts = torch.zeros_like(shares, dtype=torch.long)
    remaining = torch.full((shares.shape[0],), budget, dtype=torch.long, device=shares.device)
    weights = shares.double().clone()
    while bool((remaining > 0).any()):
        open_ = counts < capacity
        weights = torch.where(open_, weights, torch.zeros_like(weights))
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, open_.double())  # all-zero shares left
        exact = weights / weights.sum(1, keepdim=True) * remaining[:, None]
        floor = torch.minimum(exact.floor().long(), capacity - counts)
        order = torch.argsort(exact - exact.floor() - (~open_).double(), dim=1, descending=True)
        rank = torch.argsort(order, dim=1)
        extra = (rank < (remaining - floor.sum(1))[:, None]) & open_ & (floor + counts < capacity)
        counts += floor + extra.long()
        remaining = budget - counts.sum(1)
    return counts


class DirichletBudgetMasker(Masker):
    """MultiMAE's multi-modal masking: exactly ``num_visible`` visible tokens per sample, split
    across the modalities present by shares drawn from Dirichlet(``alphas``) per sample
    (:func:`split_budget`), then random tokens within each modality (lowest noise kept).

    Noise is B×(N + 1): one uniform per token, and a last column that seeds the sample's Dirichlet
    draw (so maekit's per-sample masking noise makes the whole mask reproducible)."""

    def __init__(self, num_visible: int = 98, alphas: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
        super().__init__()
        if int(num_visible) < 1:
            raise ValueError(f"num_visible must be >= 1, got {num_visible}")
        if not alphas or any(float(a) <= 0 for a in alphas):
            raise ValueError(f"alphas must be positive, one per modality, got {alphas!r}")
        self.num_visible, self.alphas = int(num_visible), tuple(float(a) for a in alphas)

    def shares(self, seeds: torch.Tensor, present: Sequence[int]) -> torch.Tensor:
        if len(self.alphas) <= max(present):
            raise ValueError(f"{len(self.alphas)} Dirichlet alphas for modalities {list(present)}: give one per modality")
        alphas = [self.alphas[m] for m in present]
        draws = [np.random.default_rng(int(seed * 2**53)).dirichlet(alphas) for seed in seeds.double().cpu()]
        return torch.tensor(np.stack(draws), device=seeds.device)

    def noise_shape(self, tokens: Tokens) -> tuple[int, ...]:
        """One number per token, plus one per sample that draws the modalities' shares."""
        return (tokens.batch_size, tokens.num_tokens + 1)

    def forward(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        present = tokens.meta.get("present", (0,))
        per_modality = tokens.meta.get("tokens_per_modality", tokens.num_tokens)
        noise = draw_noise(self.noise_shape(tokens), noise, tokens.values.device, names="(batch, tokens + 1)")
        token_noise = noise[:, :-1]
        budget = min(self.num_visible, tokens.num_tokens)
        counts = split_budget(self.shares(noise[:, -1], present), budget, per_modality)
        # rank of each token's noise within its own modality; keep the `count` lowest
        grouped = token_noise.view(tokens.batch_size, len(present), per_modality)
        rank = torch.argsort(torch.argsort(grouped, dim=2), dim=2)
        keep = (rank < counts[:, :, None]).flatten(1)
        ids_shuffle = torch.argsort((~keep).float() * 2 + token_noise, dim=1)  # kept first, by noise
        return Mask.from_order(ids_shuffle, budget)

    def extra_repr(self) -> str:
        return f"num_visible={self.num_visible}, alphas={self.alphas}"


class MultiModalEncoder(TransformerEncoder):
    """MultiMAE's encoder: one linear patch embedding per modality (no modality embedding — the
    projections already differ), the fixed 2-D sin-cos position of the patch added to every
    modality's token, a learnt global token in front (``cls_token``), shared ViT blocks, LayerNorm."""

    def __init__(self, modalities: Sequence[Sequence[Any]] = MODALITIES, patch_size: int | tuple[int, int] = 16,
                 grid_size: int | tuple[int, int] = 14, embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> None:
        super().__init__(in_dim=1, embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         drop_path_rate=drop_path_rate)
        del self.token_embed  # one embedding per modality instead
        self.modalities = _check_modalities(modalities)
        self.patch_size, self.grid_size = as_pair(patch_size, "patch_size"), as_pair(grid_size, "grid_size")
        area = self.patch_size[0] * self.patch_size[1]
        self.patch_embeds = nn.ModuleDict({name: nn.Linear(area * c, embed_dim) for name, c in self.modalities})
        self.patch_embeds.apply(init_mae_weights)
        self.pos_embed = nn.Parameter(sincos_2d_table(self.grid_size, embed_dim, 0), requires_grad=False)

    def embed(self, tokens: Tokens) -> torch.Tensor:
        modality = tokens.coords[..., 2:3]
        area = self.patch_size[0] * self.patch_size[1]
        x = 0
        for m, (name, channels) in enumerate(self.modalities):  # no boolean indexing: no device sync
            embedded = self.patch_embeds[name](tokens.values[..., :area * channels])
            x = x + torch.where(modality == m, embedded, torch.zeros_like(embedded))
        grid = tuple(tokens.meta.get("grid_size", self.grid_size))
        if grid != self.grid_size:
            raise ValueError(f"encoder built for a {self.grid_size} patch grid, got {grid}")
        index = (tokens.coords[..., 0] * grid[1] + tokens.coords[..., 1]).long()
        return x + self.pos_embed[0, index].to(x.dtype)


class OutputDecoder(nn.Module):
    """MultiMAE's spatial output adapter for one output: the encoder tokens projected to the
    decoder width are the context (each visible token plus its position and its modality's
    embedding); the queries are the output's full patch grid — the source modality's visible
    tokens where they were seen, a mask token elsewhere — plus positions and the source's
    embedding; one cross-attention layer and MLP, ``depth`` self-attention blocks, a linear head
    to the patch's pixels."""

    def __init__(self, source: int, num_modalities: int, encoder_dim: int, out_dim: int,
                 grid_size: tuple[int, int], dim: int = 256, depth: int = 2, num_heads: int = 8,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.source, self.grid_size = source, grid_size
        self.proj_context = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.modality_embed = nn.Parameter(torch.zeros(num_modalities, dim))
        self.pos_embed = nn.Parameter(sincos_2d_table(grid_size, dim, 0)[0], requires_grad=False)
        self.query_norm, self.context_norm = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.cross_attention = CrossAttention(dim, num_heads)
        self.mlp_norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.blocks = make_blocks(dim, depth, num_heads, mlp_ratio)
        self.head = nn.Linear(dim, out_dim)
        self.apply(init_mae_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.modality_embed, std=0.02)

    def no_weight_decay(self) -> set[str]:
        return {"mask_token", "pos_embed"}

    def place(self, coords: torch.Tensor) -> torch.Tensor:
        """Position + modality embedding of tokens at ``coords`` (…×3: row, column, modality)."""
        index = (coords[..., 0] * self.grid_size[1] + coords[..., 1]).long()
        return self.pos_embed[index] + self.modality_embed[coords[..., 2].long()]

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> torch.Tensor:
        per_modality = tokens.meta.get("tokens_per_modality", tokens.num_tokens)
        modality_slot = tokens.meta.get("present", (self.source,)).index(self.source)
        x = self.proj_context(latents)
        global_part, visible = x[:, :1], x[:, 1:]
        visible_coords = gather(tokens.coords, mask.ids_keep)
        context = torch.cat([global_part, visible + self.place(visible_coords).to(x.dtype)], dim=1)
        # every token back in its place (mask tokens where removed), then this output's grid
        everything = fill_mask_tokens(visible, mask.ids_restore, self.mask_token)
        grid = slice(modality_slot * per_modality, (modality_slot + 1) * per_modality)
        queries = everything[:, grid] + self.place(tokens.coords[:, grid]).to(x.dtype)
        x = queries + self.cross_attention(self.query_norm(queries), self.context_norm(context))
        x = x + self.mlp(self.mlp_norm(x))
        return self.head(self.blocks(x))


class OutputDecoders(Decoder):
    """One :class:`OutputDecoder` per output (``outputs``: dicts with ``name``, ``source`` modality,
    ``target`` "pixels" or "norm_pixels", ``loss`` "mse" or "l1"); returns ``{name: B×N×(p·q·c)}``."""

    def __init__(self, encoder_dim: int, outputs: Sequence[dict] = OUTPUTS, modalities: Sequence[Sequence[Any]] = MODALITIES,
                 patch_size: int | tuple[int, int] = 16, grid_size: int | tuple[int, int] = 14, dim: int = 256,
                 depth: int = 2, num_heads: int = 8, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.modalities = _check_modalities(modalities)
        names = [name for name, _ in self.modalities]
        area = np.prod(as_pair(patch_size, "patch_size"))
        self.outputs = check_outputs(outputs, names)
        grid = as_pair(grid_size, "grid_size")
        self.decoders = nn.ModuleDict({
            out["name"]: OutputDecoder(names.index(out["source"]), len(names), encoder_dim,
                                       int(area * self.modalities[names.index(out["source"])][1]), grid, dim, depth,
                                       num_heads, mlp_ratio)
            for out in self.outputs})

    def forward(self, latents: torch.Tensor, mask: Mask, tokens: Tokens) -> dict[str, torch.Tensor]:
        return {name: decoder(latents, mask, tokens) for name, decoder in self.decoders.items()}


def check_outputs(outputs: Sequence[dict], modality_names: Sequence[str]) -> tuple[dict, ...]:
    """Outputs with their fields checked: a name, a source among the modalities, a target kind
    and a loss kind."""
    checked = []
    for out in outputs:
        out = dict(out)
        if not isinstance(out.get("name"), str) or out.get("source") not in modality_names:
            raise ValueError(f"output {out!r}: needs a 'name' and a 'source' among the modalities {list(modality_names)}")
        if out.setdefault("target", "pixels") not in ("pixels", "norm_pixels"):
            raise ValueError(f"output {out['name']!r}: target must be 'pixels' or 'norm_pixels', got {out['target']!r}")
        if out.setdefault("loss", "mse") not in ("mse", "l1"):
            raise ValueError(f"output {out['name']!r}: loss must be 'mse' or 'l1', got {out['loss']!r}")
        out.setdefault("weight", 1.0)
        checked.append(out)
    if not checked or len({out["name"] for out in checked}) != len(checked):
        raise ValueError(f"outputs must be a non-empty list with distinct names, got {outputs!r}")
    return tuple(checked)


class MultiModalTargets(Target):
    """Per output, its source modality's patch pixels (``"pixels"``) or each patch standardised by
    its own mean and variance over all its values (``"norm_pixels"``, MultiMAE's and MAE's
    ``(x − mean) / sqrt(var + 1e-6)``): ``{name: B×N×(p·q·c)}``."""

    def __init__(self, outputs: Sequence[dict] = OUTPUTS, modalities: Sequence[Sequence[Any]] = MODALITIES) -> None:
        super().__init__()
        self.modalities = _check_modalities(modalities)
        self.outputs = check_outputs(outputs, [name for name, _ in self.modalities])

    def forward(self, tokens: Tokens, batch: Any = None) -> dict[str, torch.Tensor]:
        per_modality = tokens.meta.get("tokens_per_modality", tokens.num_tokens)
        present = tokens.meta.get("present", (0,))
        patch = tokens.meta.get("patch_size", (1, 1))
        names = [name for name, _ in self.modalities]
        targets = {}
        for out in self.outputs:
            source = names.index(out["source"])
            if source not in present:
                raise ValueError(f"output {out['name']!r} reconstructs {out['source']!r}, which the batch lacks")
            slot = present.index(source)
            values = tokens.values[:, slot * per_modality:(slot + 1) * per_modality,
                                   :patch[0] * patch[1] * self.modalities[source][1]]
            if out["target"] == "norm_pixels":
                values = norm_pix(values, 1e-6)
            targets[out["name"]] = values
        return targets


class MultiModalLoss(Loss):
    """MultiMAE's masked loss per output: squared (``"mse"``) or absolute (``"l1"``) error averaged
    over a patch's values, averaged over the source modality's *removed* patches of each sample,
    then over the samples that have any (nan-mean); the outputs' losses, weighted, summed."""

    def __init__(self, outputs: Sequence[dict] = OUTPUTS, modalities: Sequence[Sequence[Any]] = MODALITIES) -> None:
        super().__init__()
        self.modalities = _check_modalities(modalities)
        self.outputs = check_outputs(outputs, [name for name, _ in self.modalities])

    def forward(self, pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor], mask: Mask) -> dict[str, torch.Tensor]:
        names = [name for name, _ in self.modalities]
        losses: dict[str, torch.Tensor] = {}
        total = 0
        for out in self.outputs:
            prediction, goal = pred[out["name"]].float(), target[out["name"]].float()
            error = (prediction - goal).abs() if out["loss"] == "l1" else (prediction - goal) ** 2
            per_patch = error.mean(-1)
            length = per_patch.shape[1]
            slot = self.slot_of(names.index(out["source"]), mask, length)
            removed = mask.masked[:, slot * length:(slot + 1) * length].float()
            # the mean over the samples that had any of this modality removed (the reference's
            # nan-mean); rows with none are left out without a 0/0 that would poison the gradient
            has_removed = removed.sum(1) > 0
            per_sample = masked_mean(per_patch, removed, dim=1, empty=0.0)
            loss = per_sample[has_removed].mean() if bool(has_removed.any()) else per_patch.sum() * 0
            losses[f"loss_{out['name']}"] = loss
            total = total + out["weight"] * loss
        return {"loss": total, **losses}

    @staticmethod
    def slot_of(source: int, mask: Mask, length: int) -> int:
        """Where the source modality's tokens sit: modalities are concatenated in order, and a
        batch holds either all of them or the first alone."""
        return source if mask.masked.shape[1] > length else 0


class MMAE(MaskedAutoencoder):
    """MMAE (Ikezogwo et al.): MultiMAE pre-training on H&E tiles with haematoxylin and eosin
    images as extra input modalities; fine-tuned and evaluated on RGB alone.

    ``self_distillation`` (SD-MAE, Luo & Chen): a linear head on the encoder's visible tokens
    learns the decoder's (stop-gradient) output at those same visible patches, for the first
    output, with weight ``self_distillation`` (0: off); :meth:`auxiliary_losses` adds it."""

    def __init__(self, patchifier, masker, encoder, decoder, target, loss, self_distillation: float = 0.0) -> None:
        super().__init__(patchifier, masker, encoder, decoder, target, loss)
        if self_distillation < 0:
            raise ValueError(f"self_distillation weight must be >= 0, got {self_distillation}")
        self.self_distillation = float(self_distillation)
        first = self.decoder.outputs[0]
        self.distilled_output = first["name"]
        head_dim = self.decoder.decoders[first["name"]].head.out_features
        self.student_head = nn.Linear(self.encoder.embed_dim, head_dim) if self_distillation else None

    def auxiliary_losses(self, out: ForwardPass) -> dict[str, torch.Tensor]:
        if self.student_head is None:
            return {}
        assert isinstance(out.pred, dict)  # MultiMAE's decoder predicts one tensor per output
        mask = out.mask
        teacher = out.pred[self.distilled_output].detach()  # B×N (the source modality's grid)
        length = teacher.shape[1]
        source = self.decoder.decoders[self.distilled_output].source
        slot = MultiModalLoss.slot_of(source, mask, length)
        # the visible tokens' positions in the source grid, and which visible tokens are that modality's
        position = mask.ids_keep - slot * length
        own = (position >= 0) & (position < length)
        wanted = gather(teacher, position.clamp(0, length - 1))
        student = self.student_head(out.latents[:, 1:])
        per_token = ((student.float() - wanted.float()) ** 2).mean(-1)
        term = masked_mean(per_token, own, empty=0.0)
        return {"loss": self.self_distillation * term, "loss_self_distillation": term}

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """Rows of: RGB input | H | E | what the encoder saw of each (grey where removed) |
        the rgb output with the visible RGB patches pasted back."""
        from maekit.eval.visualize import uint8_panels

        if images.shape[1] == 3 and len(self.patchifier.modalities) == 3:  # RGB alone: add Ruifrok's stains
            from maekit_pathology.stains import StainSeparation

            rgb01 = images * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
            images = torch.cat([images, StainSeparation("ruifrok").stains(rgb01.clamp(0, 1))], dim=1)
        out = self.run_steps(images, seeded_noise(seed))
        tokens, mask, pred = out.tokens, out.mask, out.pred
        meta, per_modality = tokens.meta, tokens.meta["tokens_per_modality"]
        area = meta["patch_size"][0] * meta["patch_size"][1]

        def modality_images(values_per_token: torch.Tensor, m: int, channels: int) -> torch.Tensor:
            return self.patchifier.unpatchify(values_per_token[:, m * per_modality:(m + 1) * per_modality,
                                                               :area * channels], meta)

        def to_unit(x: torch.Tensor, m: int) -> torch.Tensor:
            if m == 0:
                return (x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)).clamp(0, 1)
            # standardised stain images: ±2.5 deviations to black/white, so an absent stain is mid-grey
            return ((x + 2.5) / 5).clamp(0, 1).expand(-1, 3, -1, -1)

        kept = (1 - mask.masked)[..., None]
        columns = []
        for m, (_, channels) in enumerate(self.patchifier.modalities):
            columns.append(to_unit(modality_images(tokens.values, m, channels), m))
        for m, (_, channels) in enumerate(self.patchifier.modalities):
            seen = to_unit(modality_images(tokens.values, m, channels), m)
            visible = modality_images(kept.expand_as(tokens.values), m, channels)[:, :1]
            columns.append(seen * visible + 0.5 * (1 - visible))
        rgb_pred = pred[self.decoder.outputs[0]["name"]] if self.decoder.outputs[0]["source"] == "rgb" else None
        if rgb_pred is not None:
            pasted = torch.where(kept[:, :per_modality].bool(), tokens.values[:, :per_modality, :rgb_pred.shape[-1]], rgb_pred)
            columns.append(to_unit(self.patchifier.unpatchify(pasted, meta), 0))
        rows = [uint8_panels(column) for column in columns]
        return [list(row) for row in zip(*rows)]

    def panel_titles(self) -> PanelTitles:
        """The columns of :meth:`panels`: each modality's input, each modality masked, and — when
        the first output predicts RGB — its reconstruction with the visible patches."""
        names = [name for name, _ in self.patchifier.modalities]
        columns = [*(f"{name} input" for name in names), *(f"{name} masked" for name in names)]
        if self.decoder.outputs[0]["source"] == "rgb":
            columns.append("rgb reconstruction + visible")
        return PanelTitles(columns=tuple(columns))


def mmae(img_size: int = 224, patch_size: int = 16, modalities: Sequence[Sequence[Any]] = MODALITIES,
         embed_dim: int = 384, depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
         num_visible: int = 98, alphas: Sequence[float] = (1.0, 1.0, 1.0), outputs: Sequence[dict] = OUTPUTS,
         decoder_dim: int = 256, decoder_depth: int = 2, decoder_num_heads: int = 8,
         self_distillation: float = 0.0, drop_path_rate: float = 0.0) -> MMAE:
    """MMAE with MultiMAE-small defaults: ViT-S (384, 12 layers, 6 heads), patch 16 at 224 px,
    98 visible of 3 × 196 tokens, Dirichlet(1, 1, 1), decoders of width 256, depth 2, 8 heads,
    outputs rgb + norm_rgb. ``modalities=[("rgb", 3)]`` with ``self_distillation=1`` is SD-MAE."""
    modalities = _check_modalities(modalities)
    size = as_pair(img_size, "img_size")
    patch = as_pair(patch_size, "patch_size")
    if size[0] % patch[0] or size[1] % patch[1]:
        raise ValueError(f"img_size {size} is not divisible by patch_size {patch}")
    grid = (size[0] // patch[0], size[1] // patch[1])
    encoder = MultiModalEncoder(modalities, patch, grid, embed_dim, depth, num_heads, mlp_ratio, drop_path_rate)
    return MMAE(patchifier=MultiModalPatchifier(patch, modalities),
                masker=DirichletBudgetMasker(num_visible, alphas[:len(modalities)]),
                encoder=encoder,
                decoder=OutputDecoders(embed_dim, outputs, modalities, patch, grid, decoder_dim, decoder_depth,
                                       decoder_num_heads, mlp_ratio),
                target=MultiModalTargets(outputs, modalities), loss=MultiModalLoss(outputs, modalities),
                self_distillation=self_distillation)
