"""Core's own components, registered like any plugin's (lazily, so listing imports no torch)."""
from __future__ import annotations

from maekit.hookspecs import hookimpl

CORE_COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "mae", "maekit.methods.mae:mae"),
    ("model", "masked_autoencoder", "maekit.model:MaskedAutoencoder"),
    ("model", "mask_token_model", "maekit.model:MaskTokenModel"),
    ("model", "vit_classifier", "maekit.eval.finetune:vit_classifier"),
    ("patchifier", "image_patches", "maekit.nn.patchify:ImagePatchifier"),
    ("patchifier", "cube_patches", "maekit.nn.patchify:CubePatchifier"),
    ("masker", "random_mask", "maekit.nn.masking:RandomMasker"),
    ("masker", "block_mask", "maekit.nn.masking:BlockMasker"),
    ("masker", "tube_mask", "maekit.nn.masking:TubeMasker"),
    ("masker", "blockwise_mask", "maekit.nn.masking:BlockwiseMasker"),
    ("masker", "given_mask", "maekit.nn.masking:GivenMasker"),
    ("masker", "block_plus_random_mask", "maekit.nn.masking:BlockPlusRandomMasker"),
    ("masker", "grid_block_mask", "maekit.nn.masking:GridBlockMasker"),
    ("masker", "bernoulli_mask", "maekit.nn.masking:BernoulliMasker"),
    ("masker", "score_mask", "maekit.nn.masking:ScoreGuidedMasker"),
    ("encoder", "vit_encoder", "maekit.nn.encoder:ViTEncoder"),
    ("encoder", "transformer_encoder", "maekit.nn.encoder:TransformerEncoder"),
    ("decoder", "mae_decoder", "maekit.nn.decoder:MAEDecoder"),
    ("decoder", "transformer_decoder", "maekit.nn.decoder:TransformerDecoder"),
    ("decoder", "cross_attention_decoder", "maekit.nn.decoder:CrossAttentionDecoder"),
    ("decoder", "linear_head", "maekit.nn.decoder:LinearHead"),
    ("target", "pixels", "maekit.nn.targets:PixelTarget"),
    ("target", "norm_pixels", "maekit.nn.targets:NormPixelTarget"),
    ("target", "hog", "maekit.nn.targets:HOGTarget"),
    ("target", "feature_target", "maekit.nn.targets:FeatureTarget"),
    ("target", "named_targets", "maekit.nn.targets:NamedTargets"),
    ("target", "token_ids", "maekit.nn.targets:TokenTarget"),
    ("loss", "masked_mse", "maekit.nn.losses:MaskedMSELoss"),
    ("loss", "masked_l1", "maekit.nn.losses:MaskedL1Loss"),
    ("loss", "masked_smooth_l1", "maekit.nn.losses:MaskedSmoothL1Loss"),
    ("loss", "named_losses", "maekit.nn.losses:NamedLosses"),
    ("loss", "masked_cross_entropy", "maekit.nn.losses:MaskedCrossEntropyLoss"),
    ("loss", "pair_contrastive", "maekit.nn.contrastive:PairContrastiveLoss"),
    ("teacher", "ema_teacher", "maekit.nn.teachers:ema_teacher"),
    ("teacher", "frozen_teacher", "maekit.nn.teachers:frozen_teacher"),
    ("dataset", "image_folder", "maekit.data.images:ImageFolderDataset"),
    ("dataset", "image_arrays", "maekit.data.images:ArrayDataset"),
    ("dataset", "digits", "maekit.data.bundled:DigitsDataset"),
    ("dataset", "image_tiles", "maekit.data.bundled:ImageTilesDataset"),
    ("dataset", "idx_images", "maekit.data.idx:IdxImagesDataset"),
    ("dataset", "concat_sources", "maekit.data.sources:ConcatSources"),
    ("dataset", "augmented_view", "maekit.data.views:AugmentedView"),
    ("dataset", "shards", "maekit.data.shards:ShardDataset"),
    ("dataset", "streamed_view", "maekit.data.streaming:StreamedView"),
    ("transform", "mae_augment", "maekit.data.views:MAEAugment"),
    ("transform", "eval_transform", "maekit.data.views:EvalTransform"),
    ("transform", "resize_center_crop", "maekit.data.views:ResizeCenterCrop"),
    ("transform", "views", "maekit.data.multiview:MultiView"),
]


@hookimpl
def maekit_register(registry) -> None:
    registry.register_all(CORE_COMPONENTS)


@hookimpl
def maekit_config_dirs() -> list:
    from maekit.configs import CONFIG_DIR

    return [CONFIG_DIR]


@hookimpl
def maekit_sample_data() -> dict:
    from maekit.data import samples  # imported on demand: it needs torch

    return {f"image:{name}": (lambda name=name: samples.sample_image(name)) for name in samples.SAMPLE_IMAGES}


@hookimpl
def maekit_demos() -> dict:
    return {"mae": "mae_demo_digits"}
