"""AttMask (Kakogeorgiou et al., ECCV 2022; github.com/gkakogeorgiou/attmask): iBOT whose masked
patches are the ones the EMA teacher attends to most.

One pass, top to bottom:
1. the teacher (EMA of the student's encoder and head) sees the unmasked global crops and gives
   its class and patch logits and its last block's class-token attention over the patches;
2. mask: one ratio r ~ U(0.1, 0.5) per iteration for the whole batch; AttMask-High masks each
   crop's ⌊rN⌋ most attended patches (Low: least attended; Hint: High, then ⌊0.1·r′·N⌋ patches
   drawn uniformly from the top 10 % shown again, r′ a second draw); each global crop is masked
   with probability 0.5 (otherwise not at all);
3. the student encoder sees every patch of the global crops, the masked ones' embeddings replaced
   by its learned mask token (after the patch embedding, before positions), and the local crops
   whole; the shared head gives class logits for every crop and patch logits for the globals;
4. iBOT's loss (:class:`~maekit_attnmask.ibot.IBOTLoss`): class-token cross-entropy across crops
   + patch cross-entropy on the masked patches, against the centred and sharpened teacher.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from maekit.data.multiview import named_views
from maekit.methods.mae import build_vit_encoder
from maekit.model import MaskTokenModel, noise_for_views
from maekit.nn.base import NoiseSource
from maekit.nn.masking import ScoreGuidedMasker
from maekit.nn.schedules import ScheduledValues
from maekit.structures import Mask, Tokens
from maekit_attnmask.ibot import IBOTHead, IBOTLoss, IBOTTeacher, UniformPerStep

__all__ = ["AttMask", "attmask", "MODES"]

#: AttMask's variants: which patches the teacher's attention picks ("random": none, the same
#: counts at random — the baseline at the same budget)
MODES = ("high", "low", "hint", "random")


class AttMask(MaskTokenModel):
    """iBOT with attention-guided masking (module docstring). ``decoder`` is the projection head,
    ``target`` the EMA teacher, ``loss`` iBOT's; the batch carries named crops (``views``):
    ``global_views`` are masked and seen by the teacher, the others are local crops."""

    def __init__(self, mode: str = "high", global_views: Sequence[str] = ("global_1", "global_2"),
                 mask_ratio: tuple[float, float] = (0.1, 0.5), mask_probability: float = 0.5, hint_max: float = 0.1,
                 freeze_last_layer_epochs: int = 1, seed: int | None = None, **parts: Any) -> None:
        super().__init__(**parts)
        if mode not in MODES:
            raise ValueError(f"attmask mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        if len(global_views) < 1:
            raise ValueError("attmask needs at least one global view")
        if not 0 <= mask_probability <= 1:
            raise ValueError(f"attmask mask_probability must be in [0, 1], got {mask_probability!r}")
        low, high = mask_ratio
        self.global_views, self.mask_probability, self.hint_max = tuple(global_views), float(mask_probability), float(hint_max)
        freeze = max(int(freeze_last_layer_epochs), 0)
        # the ratio draws follow the run's seed (the engine seeds torch before building the model)
        seed = torch.initial_seed() % 2**31 if seed is None else int(seed)
        self.draws = ScheduledValues(
            mask_ratio=UniformPerStep(low, high, seed), hint_ratio=UniformPerStep(low, high, seed + 1),
            # 0 while the head's last layer is frozen (the first epochs), then 1
            last_layer=dict(type="piecewise", points=[(freeze - 1, 0.0), (freeze, 1.0)], by_epoch=True) if freeze else 1.0)

    pretraining_only = ("target.", "loss.")

    def crops(self, batch: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(global crops, local crops) by name, in the order of ``global_views`` and of the batch."""
        globals_ = named_views(batch, self.global_views, "attmask")
        return globals_, [view for name, view in batch["views"].items() if name not in self.global_views]

    def mask_from_attention(self, tokens: Tokens, attention: torch.Tensor, noise: NoiseSource) -> Mask:
        """Each crop's mask from the teacher's attention at this iteration's ratio; each crop kept
        unmasked with probability 1 − ``mask_probability``. Rows crop-major, as ``tokens``.
        Noise per crop: the masker's (one number per patch for ties, a second for hints) and one for the coin."""
        crops = len(self.global_views)
        batch = tokens.batch_size // crops
        masker: Any = self.masker
        columns = masker.noise_shape(tokens)[1]  # one per patch (two with hints)
        sources = noise_for_views(noise, crops)
        drawn = torch.cat([source((batch, columns + 1), tokens.values.device) for source in sources])
        hint = self.hint_max * self.draws["hint_ratio"] if masker.hint_ratio > 0 else 0.0
        scores = None if self.mode == "random" else attention  # random: every patch scores alike
        chosen = masker(tokens, noise=drawn[:, :columns], scores=scores, mask_ratio=self.draws["mask_ratio"],
                        hint_ratio=hint)
        coin = drawn[:, columns] <= self.mask_probability  # the reference: masked unless u > p
        return Mask.from_masked(chosen.masked.bool() & coin[:, None])

    def forward(self, batch: Any, noise: NoiseSource = None) -> dict[str, torch.Tensor]:
        globals_, locals_ = self.crops(batch)
        tokens = self.tokenize(torch.cat(globals_))
        teacher = self.make_target(tokens, batch)
        mask = self.mask_from_attention(tokens, teacher["attention"], noise)
        train_last = self.draws["last_layer"] > 0.5
        student = self.decoder(self.encoder(self.encoder_input(batch, tokens, mask)), train_last_layer=train_last)
        crops, prefix = len(globals_), self.encoder.num_prefix_tokens
        student_cls = list(student[:, 0].chunk(crops))
        if locals_:
            local_out = self.encoder(self.tokenize(torch.cat(locals_)))[:, 0]
            student_cls += list(self.decoder(local_out, train_last_layer=train_last).chunk(len(locals_)))
        pred = {"cls": torch.stack(student_cls), "patch": torch.stack(student[:, prefix:].chunk(crops))}
        target = {"cls": torch.stack(teacher["cls"].chunk(crops)), "patch": torch.stack(teacher["patch"].chunk(crops))}
        losses = self.loss(pred, target, mask)
        masked_share = mask.masked.float().mean()
        return {**losses, "mask_ratio": masked_share.new_tensor(self.draws["mask_ratio"]), "masked_share": masked_share}

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """input | teacher attention | masked (at the middle ratio, every crop masked): no pixels
        are predicted."""
        from maekit.eval.visualize import denormalised_panels, patch_map_panels
        from maekit.model import seeded_noise

        self.eval()
        tokens = self.tokenize(images)
        attention = self.make_target(tokens, images)["attention"]
        masker: Any = self.masker
        low, high = self.draws.schedules["mask_ratio"].low, self.draws.schedules["mask_ratio"].high  # type: ignore[attr-defined]
        scores = None if self.mode == "random" else attention
        mask = masker(tokens, noise=seeded_noise(seed), scores=scores, mask_ratio=(low + high) / 2,
                      hint_ratio=self.hint_max * (low + high) / 2 if masker.hint_ratio > 0 else 0.0)
        removed = mask.masked.unsqueeze(-1).to(tokens.values.dtype)
        unpatchify = self.patchifier.unpatchify
        shown = denormalised_panels(unpatchify(tokens.values * (1 - removed), tokens.meta), mean, std,
                                    unpatchify(removed.expand_as(tokens.values), tokens.meta))
        maps = patch_map_panels(attention, tuple(tokens.meta["grid_size"]), images.shape[-2:])
        return [list(row) for row in zip(denormalised_panels(images, mean, std), maps, shown)]

    def panel_titles(self) -> Any:
        from maekit.eval.visualize import PanelTitles

        return PanelTitles(columns=("input", "teacher attention", "masked"))


def attmask(size: str | None = "small", img_size: Any = 224, patch_size: int | None = None, in_chans: int = 3,
            encoder_name: str | None = None, encoder: dict[str, Any] | None = None, mode: str = "high",
            mask_ratio: tuple[float, float] = (0.1, 0.5), mask_probability: float = 0.5, hint_max: float = 0.1,
            global_views: Sequence[str] = ("global_1", "global_2"), out_dim: int = 8192, head_hidden_dim: int = 2048,
            head_bottleneck_dim: int = 256, norm_last_layer: bool = False, momentum: Any = None,
            student_temp: float = 0.1, teacher_temp: float = 0.07,
            warmup_teacher_temp: float = 0.04, patch_temp: float = 0.07, warmup_patch_temp: float = 0.04,
            warmup_teacher_temp_epochs: int = 30, center_momentum: float = 0.9, lambda_cls: float = 1.0,
            lambda_patch: float = 1.0, freeze_last_layer_epochs: int = 1, drop_path_rate: float = 0.1,
            seed: int | None = None) -> AttMask:
    """AttMask with the README's ViT-S/16 recipe: AttMask-High, r ~ U(0.1, 0.5), p 0.5, a shared
    head to 8192 with a trained last-layer norm, student τ 0.1, teacher τ 0.04 → 0.07 over 30
    epochs (class and patch), centres at 0.9, λ 1 and 1, the head's last layer frozen for the
    first epoch, drop-path 0.1. ``momentum``: the teacher's, by default 0.996 → 1 by a cosine
    over the whole run (per iteration, as the reference). ``seed``: the ratio draws' (default:
    the run's)."""
    if momentum is None:
        momentum = dict(type="cosine", start=0.996, end=1.0, length=None)
    vit = build_vit_encoder(size, encoder_name, img_size, patch_size, in_chans,
                            {**(encoder or {}), "mask_token": True}, drop_path_rate, method="attmask")
    p, q = vit.patch_size
    head = IBOTHead(vit.embed_dim, out_dim, head_hidden_dim, head_bottleneck_dim, norm_last_layer=norm_last_layer)
    masker = ScoreGuidedMasker(mask_ratio=0.3, select="rank", prefer="low" if mode == "low" else "high",
                               hint_ratio=hint_max * mask_ratio[1] if mode == "hint" else 0.0, hint_pool=hint_max)
    return AttMask(
        patchifier=dict(type="image_patches", patch_size=(p, q), in_chans=in_chans), masker=masker, encoder=vit,
        decoder=head, target=IBOTTeacher(vit, head, momentum),
        loss=IBOTLoss(out_dim, student_temp, teacher_temp, warmup_teacher_temp, patch_temp, warmup_patch_temp,
                      warmup_teacher_temp_epochs, center_momentum, lambda_cls, lambda_patch),
        mode=mode, global_views=global_views, mask_ratio=tuple(mask_ratio), mask_probability=mask_probability, hint_max=hint_max,
        freeze_last_layer_epochs=freeze_last_layer_epochs, seed=seed)
