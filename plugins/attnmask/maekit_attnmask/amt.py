"""AMT (Liu, Gui, Luo, AAAI 2023; github.com/guijiejie/AMT, ``mae-AMT``): MAE whose masked and
thrown patches are chosen by the model's own attention.

One pass, top to bottom:
1. patchify the training crop; when the run has attention maps (:class:`AMTAttentionHook`), the
   sample's whole-image map follows the crop and flip (``batch["geometry"]``,
   :func:`maekit.nn.scores.scores_in_crop`) into one weight per patch (``tokens.meta["scores"]``);
2. mask: without maps (the first ``random_epochs``) plain random masking at 0.75; with them the
   patches are drawn without replacement in proportion to their weight: the first 45 % drawn are
   masked (reconstructed), the next 40 % thrown (in neither encoder, decoder nor loss), the last
   15 % visible (88 / 78 / 30 of 196) — so high attention tends to be masked;
3. the encoder sees the visible patches; the decoder adds positions to every patch and drops the
   thrown ones (core's ``Mask.thrown``); MSE on the masked patches only, raw pixels by default
   (the release's ``norm_pix_loss`` is off; its issue #5).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from maekit.methods.mae import mae
from maekit.model import MaskedAutoencoder
from maekit.nn.base import Masker, NoiseSource
from maekit.nn.masking import RandomMasker, ScoreGuidedMasker
from maekit.nn.scores import cls_attention, scores_in_crop
from maekit.structures import Mask, Tokens

__all__ = ["AMT", "amt", "AMTAttentionHook", "attention_maps"]


class AMT(MaskedAutoencoder):
    """MAE with attention-driven masking and throwing (module docstring). ``masker`` is the
    score-guided one; ``warmup_masker`` masks while the run has no attention maps yet."""

    def __init__(self, warmup_masker: Masker, **parts: Any) -> None:
        super().__init__(**parts)
        self.warmup_masker = warmup_masker
        #: set by :class:`AMTAttentionHook` when a run starts: training without it would never use attention
        self.attention_refresh: tuple[int, int] | None = None

    def tokenize(self, batch: Any) -> Tokens:
        tokens = super().tokenize(batch)
        maps = batch.get("attention_map") if isinstance(batch, dict) else None
        if maps is None:
            return tokens
        geometry = batch.get("geometry")
        if geometry is None:
            raise ValueError("amt: the batch has attention maps but no crop geometry; train with "
                             "transform=dict(type='mae_augment', track_geometry=True, ...)")
        scores = scores_in_crop(maps, geometry, tuple(tokens.meta["grid_size"]))
        return replace(tokens, meta={**tokens.meta, "scores": scores})

    def make_mask(self, tokens: Tokens, noise: NoiseSource = None) -> Mask:
        scores = tokens.meta.get("scores")
        if scores is None:
            return self.warmup_masker(tokens, noise=noise)
        return self.masker(tokens, noise=noise, scores=scores)

    def compute_loss(self, out: Any) -> dict[str, torch.Tensor]:
        """The masked patches' MSE, and the share of patches thrown (logged: 0 until the first map)."""
        thrown = out.mask.thrown
        share = thrown.float().mean() if thrown is not None else out.mask.masked.new_zeros(())
        return {**super().compute_loss(out), "thrown_share": share}

    def forward(self, batch: Any, noise: NoiseSource = None) -> dict[str, torch.Tensor]:
        if self.training and self.attention_refresh is None:
            raise ValueError("amt trains with its attention hook: add custom_hooks=[dict(type='AMTAttentionHook', "
                             "random_epochs=40, refresh_epochs=40)] to the config (the amt configs have it)")
        return super().forward(batch, noise)

    @torch.no_grad()
    def attention(self, batch: Any) -> torch.Tensor:
        """The current encoder's class-token attention over the image's patches (B×N; the last
        block, each head min–max scaled, heads averaged): AMT's map."""
        return cls_attention(self.encoder, super().tokenize(batch), layer=-1, per_head_scaling=True)

    @torch.no_grad()
    def panels(self, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> list[list[Any]]:
        """input | attention | masked (thrown and masked grey) | reconstruction | reconstruction +
        visible, with the mask drawn from the image's own attention."""
        from maekit.eval.visualize import patch_map_panels, reconstruction_panels
        from maekit.model import seeded_noise

        self.eval()
        tokens = super().tokenize(images)
        grid = tuple(tokens.meta["grid_size"])
        scores = self.attention(images)
        whole = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]]).expand(len(images), -1)
        batch = {"inputs": images, "attention_map": scores.view(-1, *grid), "geometry": whole}
        out = self.run_steps(batch, noise=seeded_noise(seed))
        rows = reconstruction_panels(self, out, mean, std)
        maps = patch_map_panels(scores, grid, images.shape[-2:])
        return [[row[0], attention, *row[1:]] for row, attention in zip(rows, maps)]

    def panel_titles(self) -> Any:
        from maekit.eval.visualize import PanelTitles, reconstruction_titles

        columns = reconstruction_titles(self.target).columns
        return PanelTitles(columns=(columns[0], "attention", "masked + thrown", *columns[2:]))


def amt(size: str | None = "base", img_size: Any = 224, patch_size: int | None = None, in_chans: int = 3,
        mask_ratio: float = 0.45, throw_ratio: float = 0.40, warmup_mask_ratio: float = 0.75, norm_pix_loss: bool = False,
        encoder_name: str | None = None, encoder: dict[str, Any] | None = None, decoder_embed_dim: int = 512,
        decoder_depth: int = 8, decoder_num_heads: int = 16) -> AMT:
    """AMT with the paper's ratios (mask 0.45, throw 0.40; the release's command-line defaults
    0.75 / 0 turn throwing off), random masking at 0.75 before the first map, raw-pixel MSE, and
    MAE's ViT and decoder."""
    base = mae(size, img_size, patch_size, in_chans, mask_ratio=warmup_mask_ratio, norm_pix_loss=norm_pix_loss,
               encoder_name=encoder_name, encoder=encoder, decoder_embed_dim=decoder_embed_dim,
               decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads)
    return AMT(warmup_masker=RandomMasker(warmup_mask_ratio),
               patchifier=base.patchifier, masker=ScoreGuidedMasker(mask_ratio, throw_ratio, select="sample"),
               encoder=base.encoder, decoder=base.decoder, target=base.target, loss=base.loss)


@torch.no_grad()
def attention_maps(model: AMT, dataset: Any, transform: Any, batch_size: int = 64, rank: int = 0, world: int = 1,
                   num_workers: int = 0) -> torch.Tensor:
    """Every image's map (len × h × w, float32) from ``model.attention`` on the image resized whole
    (``transform``: the evaluation view, no crop, no flip), in eval mode. Process ``rank`` of
    ``world`` reads and scores only the images ``rank, rank + world, ...`` and leaves the others
    zero (a sum over processes completes it)."""
    from torch.utils.data import DataLoader, Subset

    from maekit.data.views import TransformedView

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    mine = list(range(rank, len(dataset), world))
    grid = tuple(model.patchifier(transform(dataset[0]["inputs"])[None].to(device)).meta["grid_size"])
    maps = torch.zeros(len(dataset), *grid)
    loader = DataLoader(Subset(TransformedView(dataset, transform), mine), batch_size=batch_size, num_workers=num_workers)
    start = 0
    for batch in loader:
        images = batch["inputs"].to(device)
        rows = torch.tensor(mine[start: start + len(images)])
        maps[rows] = model.attention(images).float().cpu().view(-1, *grid)
        start += len(images)
    model.train(was_training)
    return maps


@HOOKS.register_module(name="AMTAttentionHook")
class AMTAttentionHook(Hook):
    """AMT's attention schedule: random masking for the first ``random_epochs`` epochs; then, at
    the end of epoch ``random_epochs`` and every ``refresh_epochs`` after (never after the last
    iteration), every training image's map is recomputed by the current encoder on the image
    resized whole (the training size, no crop), and each batch carries its images' maps
    (``attention_map``) from then on. The reference switches after 41 epochs (``epoch > 40``,
    0-based) and refreshes after 40, 80, ...; here after exactly ``random_epochs``. Epochs are the
    run's (``schedule.iters_per_epoch``, else the data's) unless ``iters_per_epoch`` is given.

    The maps (float16: half the size; scores in [0, 1]) are in every checkpoint (``amt_attention``)
    and a resumed run masks exactly as an uninterrupted one; a run that only starts from a
    checkpoint (``load_from``) begins with its own random epochs. Under DDP each process scores a
    share of the images (with the training loader's workers) and the shares are summed."""

    priority = "NORMAL"

    def __init__(self, random_epochs: int = 40, refresh_epochs: int = 40, batch_size: int = 64,
                 iters_per_epoch: int | None = None) -> None:
        for name, value in (("random_epochs", random_epochs), ("refresh_epochs", refresh_epochs), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"AMTAttentionHook {name} must be a positive int, got {value!r}")
        self.random_epochs, self.refresh_epochs, self.batch_size = random_epochs, refresh_epochs, batch_size
        self.given_iters_per_epoch = iters_per_epoch
        self.maps: torch.Tensor | None = None

    def before_train(self, runner: Any) -> None:
        from maekit.engine.hooks import TeacherUpdateHook, iters_per_epoch_of, method_of

        method = method_of(runner)
        if not isinstance(method, AMT):
            raise ValueError(f"AMTAttentionHook drives amt's masking; the model is {type(method).__name__}")
        # the run's epoch, as every other epoch-counted schedule sees it (the teacher hook has it already)
        run_epoch = next((getattr(h, "iters_per_epoch", None) for h in runner.hooks if isinstance(h, TeacherUpdateHook)), None)
        self.iters_per_epoch = iters_per_epoch_of(runner, self.given_iters_per_epoch or run_epoch)
        method.attention_refresh = (self.random_epochs, self.refresh_epochs)
        if isinstance(runner.train_dataloader.dataset, torch.utils.data.IterableDataset):
            raise ValueError("amt keeps an attention map per training image, by its position in the dataset; a "
                             "streamed (shards) dataset has none: train amt on a map-style dataset")
        images = len(runner.train_dataloader.dataset)
        if self.maps is not None and runner.iter == 0:  # weights loaded into a new run: its own schedule
            runner.logger.info("amt: the loaded checkpoint's attention maps are not used by a new run (random epochs first)")
            self.maps = None
        if self.maps is not None and len(self.maps) != images:
            raise ValueError(f"the checkpoint's amt attention maps cover {len(self.maps)} images, the training data has "
                             f"{images}: resume on the data the run was trained on")

    def refresh_due(self, finished_iters: int, max_iters: int) -> bool:
        """Whether the maps are recomputed after ``finished_iters`` iterations."""
        if finished_iters >= max_iters or finished_iters % self.iters_per_epoch:
            return False
        epochs = finished_iters // self.iters_per_epoch
        return epochs >= self.random_epochs and (epochs - self.random_epochs) % self.refresh_epochs == 0

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self.maps is not None and isinstance(data_batch, dict):
            positions = torch.as_tensor(data_batch["index"]) % len(self.maps)
            data_batch["attention_map"] = self.maps[positions].float()

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.refresh_due(runner.iter + 1, runner.max_iters):
            self.refresh(runner)

    def refresh(self, runner: Any) -> None:
        from mmengine.dist import all_reduce, get_rank, get_world_size

        from maekit.data.views import EvalTransform
        from maekit.engine.hooks import method_of

        view = runner.train_dataloader.dataset  # maekit's AugmentedView over the raw images
        transform_cfg = runner.cfg.train_dataloader.dataset.get("transform")
        transform = EvalTransform.matching(view.dataset, dict(transform_cfg) if transform_cfg else None)
        method = method_of(runner)
        maps = attention_maps(method, view.dataset, transform, self.batch_size, get_rank(), get_world_size(),
                              int(runner.train_dataloader.num_workers))
        if get_world_size() > 1:
            maps = maps.to(next(method.parameters()).device)
            all_reduce(maps, op="sum")
        self.maps = maps.cpu().half()
        runner.logger.info(f"amt: attention maps of {len(self.maps)} images recomputed after iteration {runner.iter + 1}")

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if self.maps is not None:
            checkpoint["amt_attention"] = self.maps.clone()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self.maps = checkpoint.get("amt_attention")
