"""Audio-MAE's mechanism pinned against independent computations: the reference's position-table
quirk, the time-frequency masking rule and order, the shifted-window decoder (locality, the wrap
mask, the cosine attention), the norm-pix masked loss, encoder parity with timm, and the official
checkpoint layouts (names and shapes of the reference's ViT-B)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from maekit_audio.interop import convert_audio_checkpoint
from maekit_audio.model import (
    AudioClassifier,
    SwinCRBlock,
    TimeFrequencyMasker,
    WindowCosineAttention,
    audio_mae,
    audio_position_table,
)

from maekit.model import seeded_noise
from maekit.registry import build

TINY = dict(size=None, encoder_name="vit_tiny_patch16_224", encoder=dict(embed_dim=32, depth=2, num_heads=2),
            decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4)


def sincos(dim: int, positions: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
    angles = positions.astype(np.float64)[:, None] * omega[None]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def test_reference_position_table_gives_token_k_the_codes_of_k_mod_64_and_k_div_64():
    table = audio_position_table((64, 8), 16)[0]
    k = np.arange(512)
    expected = np.concatenate([sincos(8, k % 64), sincos(8, k // 64)], axis=1)
    assert table.shape == (513, 16) and torch.equal(table[0], torch.zeros(16))
    np.testing.assert_allclose(table[1:].numpy(), expected, atol=1e-6)
    # the plain layout is the (t, f) table: token k = 8t + f gets [sincos(f), sincos(t)]
    grid = audio_position_table((64, 8), 16, "grid")[0, 1:].numpy()
    np.testing.assert_allclose(grid, np.concatenate([sincos(8, k % 8), sincos(8, k // 8)], axis=1), atol=1e-6)


def reference_random_masking_2d(noise_t: torch.Tensor, noise_f: torch.Tensor, mask_t_prob: float,
                                mask_f_prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """AudioMAE models_mae.random_masking_2d, written out from the reference with given noise."""
    n, t = noise_t.shape
    f = noise_f.shape[1]
    keep_t, keep_f = int(t * (1 - mask_t_prob)), int(f * (1 - mask_f_prob))
    mask_f = torch.ones(n, f)
    mask_f[:, :keep_f] = 0
    mask_f = torch.gather(mask_f, 1, torch.argsort(torch.argsort(noise_f, 1), 1)).unsqueeze(1).repeat(1, t, 1)
    mask_t = torch.ones(n, t)
    mask_t[:, :keep_t] = 0
    mask_t = torch.gather(mask_t, 1, torch.argsort(torch.argsort(noise_t, 1), 1)).unsqueeze(1).repeat(1, f, 1).permute(0, 2, 1)
    mask = 1 - (1 - mask_t) * (1 - mask_f)
    id2res = torch.arange(n * t * f).reshape(n, t, f).float() + 999 * mask
    order = torch.argsort(id2res.flatten(1))
    return mask.flatten(1), order[:, : keep_t * keep_f]


def test_time_frequency_masking_follows_the_reference_rule_and_order():
    model = audio_mae(**TINY, masking="time_frequency", mask_t_prob=0.7, mask_f_prob=0.3)
    tokens = model.tokenize(torch.zeros(3, 1, 1024, 128))
    noise = torch.rand(3, 64 + 8, generator=torch.Generator().manual_seed(0))
    mask = model.make_mask(tokens, noise)
    masked, ids_keep = reference_random_masking_2d(noise[:, :64], noise[:, 64:], 0.7, 0.3)
    assert mask.num_visible == int(64 * 0.3) * int(8 * 0.7) == 19 * 5
    assert torch.equal(mask.masked.float(), masked) and torch.equal(mask.ids_keep, ids_keep)
    grid = mask.masked.reshape(3, 64, 8).bool()
    kept_t, kept_f = ~grid.all(dim=2), ~grid.all(dim=1)  # a kept token needs its time and its band kept
    assert torch.equal(~grid, kept_t[:, :, None] & kept_f[:, None, :])
    with pytest.raises(ValueError, match=r"noise must have shape \(batch, time \+ frequency\)"):
        model.make_mask(tokens, torch.rand(3, 512))
    with pytest.raises(ValueError, match="keep no token"):
        TimeFrequencyMasker(0.99, 0.0)(tokens)


def test_unstructured_masking_keeps_102_of_512_tokens():
    model = audio_mae(**TINY)
    assert model.make_mask(model.tokenize(torch.zeros(2, 1, 1024, 128))).num_visible == 102  # int(512 · 0.2)


def affected(block: SwinCRBlock, grid: tuple[int, int], where: tuple[int, int]) -> set[tuple[int, int]]:
    """Grid cells whose block output changes when the token at ``where`` changes."""
    torch.manual_seed(0)
    x = torch.randn(1, grid[0] * grid[1], 32)
    changed = x.clone()
    changed[0, where[0] * grid[1] + where[1]] += 5.0
    with torch.no_grad():
        delta = (block(changed, grid) - block(x, grid)).abs().sum(-1)[0].reshape(grid)
    return {(int(r), int(c)) for r, c in (delta > 1e-5).nonzero()}


def test_windows_are_4x4_and_odd_blocks_shift_by_two_along_time_with_the_wrap_masked():
    plain = SwinCRBlock(32, 4, (4, 4), (0, 0)).eval()
    shifted = SwinCRBlock(32, 4, (4, 4), (2, 0)).eval()
    window = {(r, c) for r in range(4) for c in range(4)}
    assert affected(plain, (64, 8), (0, 0)) == window
    # shifted: rows 2..5 form a window; rows 0-1 wrap next to rows 62-63 but the mask keeps them apart
    assert affected(shifted, (64, 8), (3, 5)) == {(r, c) for r in range(2, 6) for c in range(4, 8)}
    assert affected(shifted, (64, 8), (0, 0)) == {(r, c) for r in range(2) for c in range(4)}
    assert affected(shifted, (64, 8), (62, 1)) == {(r, c) for r in (62, 63) for c in range(4)}
    mask = shifted.attention_mask((64, 8), (4, 4), (2, 0), torch.device("cpu"))
    assert mask.shape == (32, 16, 16) and not mask[:30].any()  # only the two wrapped windows are masked
    assert (mask[30, :8, 8:] == -100).all() and (mask[30, :8, :8] == 0).all()
    with pytest.raises(ValueError, match="do not tile the 6×8 token grid"):
        plain(torch.zeros(1, 48, 32), (6, 8))


def test_window_attention_is_cosine_similarity_over_tau_plus_the_meta_mlp_bias():
    torch.manual_seed(0)
    attention = WindowCosineAttention(16, 2, (2, 2)).eval()
    with torch.no_grad():
        attention.tau.copy_(torch.tensor([0.5, 2.0]))
        x = torch.randn(3, 4, 16)
        q, k, v = attention.qkv(x).reshape(3, 4, 3, 2, 8).permute(2, 0, 3, 1, 4)
        cosine = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(k, dim=-1).transpose(-1, -2)
        offsets = torch.tensor([[r1 - r2, c1 - c2] for r1, c1 in np.ndindex(2, 2) for r2, c2 in np.ndindex(2, 2)]).float()
        bias = attention.meta_mlp(torch.sign(offsets) * torch.log1p(offsets.abs())).T.reshape(2, 4, 4)
        weights = (cosine / torch.tensor([0.5, 2.0]).view(1, 2, 1, 1) + bias).softmax(-1)
        expected = attention.proj((weights @ v).transpose(1, 2).reshape(3, 4, 16))
        assert torch.allclose(attention(x), expected, atol=1e-5)


def test_loss_is_the_norm_pix_mse_of_removed_patches_in_the_reference_layout():
    torch.manual_seed(0)
    model = audio_mae(**TINY, target_length=64, num_mel_bins=32).eval()  # eval: the position-bias MLP has dropout
    spectrogram = torch.randn(2, 1, 64, 32)
    out = model.run_steps(spectrogram, noise=seeded_noise(1))
    patches = torch.einsum("nchpwq->nhwpqc", spectrogram.reshape(2, 1, 4, 16, 2, 16)).reshape(2, 8, 256)
    target = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((out.pred - target) ** 2).mean(-1)
    expected = (per_patch * out.mask.masked).sum() / out.mask.masked.sum()
    assert torch.allclose(model(spectrogram, noise=seeded_noise(1))["loss"], expected, atol=1e-6)


def test_encoder_matches_timm_vision_transformer_on_copied_weights():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = audio_mae(**TINY).eval()
    vit = VisionTransformer(img_size=(1024, 128), patch_size=16, in_chans=1, embed_dim=32, depth=2, num_heads=2,
                            num_classes=0).eval()
    vit.load_state_dict(model.encoder.state_dict(), strict=False)
    spectrogram = torch.randn(2, 1, 1024, 128)
    with torch.no_grad():
        assert torch.allclose(model.encode(spectrogram), vit.forward_features(spectrogram), atol=1e-5)


def official_pretrain_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of AudioMAE's models_mae (ViT-B, local decoder) with its shape, as the reference has it."""
    shapes = {"cls_token": (1, 1, 768), "pos_embed": (1, 513, 768), "mask_token": (1, 1, 512),
              "decoder_pos_embed": (1, 513, 512), "patch_embed.proj.weight": (768, 1, 16, 16),
              "patch_embed.proj.bias": (768,), "norm.weight": (768,), "norm.bias": (768,),
              "decoder_embed.weight": (512, 768), "decoder_embed.bias": (512,), "decoder_norm.weight": (512,),
              "decoder_norm.bias": (512,), "decoder_pred.weight": (256, 512), "decoder_pred.bias": (256,)}
    for i in range(12):
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in (
            ("norm1.weight", (768,)), ("norm1.bias", (768,)), ("attn.qkv.weight", (2304, 768)),
            ("attn.qkv.bias", (2304,)), ("attn.proj.weight", (768, 768)), ("attn.proj.bias", (768,)),
            ("norm2.weight", (768,)), ("norm2.bias", (768,)), ("mlp.fc1.weight", (3072, 768)),
            ("mlp.fc1.bias", (3072,)), ("mlp.fc2.weight", (768, 3072)), ("mlp.fc2.bias", (768,)))})
    for j in range(16):
        shapes.update({f"decoder_blocks.{j}.{name}": shape for name, shape in (
            ("attn.tau", (16,)), ("attn.qkv.weight", (1536, 512)), ("attn.qkv.bias", (1536,)),
            ("attn.proj.weight", (512, 512)), ("attn.proj.bias", (512,)), ("attn.meta_mlp.fc1.weight", (384, 2)),
            ("attn.meta_mlp.fc1.bias", (384,)), ("attn.meta_mlp.fc2.weight", (16, 384)),
            ("attn.meta_mlp.fc2.bias", (16,)), ("norm1.weight", (512,)), ("norm1.bias", (512,)),
            ("mlp.fc1.weight", (2048, 512)), ("mlp.fc1.bias", (2048,)), ("mlp.fc2.weight", (512, 2048)),
            ("mlp.fc2.bias", (512,)), ("norm2.weight", (512,)), ("norm2.bias", (512,)))})
    return shapes


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(value.shape) for name, value in module.state_dict().items()}


def test_official_checkpoints_convert_onto_the_base_models_key_for_key_and_shape_for_shape():
    official = official_pretrain_shapes()
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = audio_mae(size="base")
        state = {name: torch.empty(shape) for name, shape in official.items()}
    converted, layout = convert_audio_checkpoint({"model": {f"module.{k}": v for k, v in state.items()}})
    assert layout == "pretrain" and {k: tuple(v.shape) for k, v in converted.items()} == shapes_of(model)
    assert converted["decoder.blocks.3.attn.meta_mlp.fc1.weight"] is state["decoder_blocks.3.attn.meta_mlp.fc1.weight"]
    # the fine-tuning layout (models_vit): no norm, fc_norm and a 527-way head
    encoder_keys = {k: v for k, v in official.items() if not k.startswith(("decoder", "mask_token", "norm."))}
    finetuned = {**encoder_keys, "fc_norm.weight": (768,), "fc_norm.bias": (768,), "head.weight": (527, 768),
                 "head.bias": (527,)}
    with torch.device("meta"):
        classifier = AudioClassifier(model.patchifier, model.encoder, 527, multi_label=True)
        converted, layout = convert_audio_checkpoint({"model": {k: torch.empty(s) for k, s in finetuned.items()}})
    assert layout == "finetune" and {k: tuple(v.shape) for k, v in converted.items()} == shapes_of(classifier)
    with pytest.raises(Exception, match="unexpected_key"):
        convert_audio_checkpoint({"model": {**{k: torch.empty(0) for k in official}, "unexpected_key": torch.empty(0)}})
    with pytest.raises(ValueError, match="not an official Audio-MAE checkpoint"):
        convert_audio_checkpoint({"model": {"weight": torch.zeros(1)}})


def test_converted_weights_load_and_give_the_same_encoding():
    torch.manual_seed(0)
    source = audio_mae(**TINY).eval()
    official = {k[len("encoder."):] if k.startswith("encoder.") else k: v for k, v in source.state_dict().items()}
    official = {{"decoder.mask_token": "mask_token", "decoder.pos_embed": "decoder_pos_embed"}.get(k, k): v
                for k, v in official.items()}
    official = {k.replace("decoder.", "decoder_", 1) if k.startswith("decoder.") else k: v for k, v in official.items()}
    converted, _ = convert_audio_checkpoint({"model": official})
    target = audio_mae(**TINY).eval()
    target.load_state_dict(converted, strict=True)
    spectrogram = torch.randn(1, 1, 1024, 128)
    assert torch.equal(target(spectrogram, noise=seeded_noise(0))["loss"], source(spectrogram, noise=seeded_noise(0))["loss"])


def test_classifier_pools_the_last_block_without_the_encoders_norm_and_masks_only_in_training():
    torch.manual_seed(0)
    model = audio_mae(**TINY, target_length=64, num_mel_bins=32)
    classifier = AudioClassifier(model.patchifier, model.encoder, 5, mask_t_prob=0.5, mask_f_prob=0.5)
    assert isinstance(classifier.encoder.norm, torch.nn.Identity)
    batch = {"inputs": torch.randn(4, 1, 64, 32), "label": torch.tensor([0, 1, 2, 3])}
    classifier.eval()
    tokens = model.patchifier(batch)
    expected = classifier.head(classifier.fc_norm(model.encoder(tokens)[:, 1:].mean(1)))
    assert torch.allclose(classifier.classify(batch), expected, atol=1e-6)
    classifier.train()
    seen = []
    handle = classifier.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    classifier(batch)
    handle.remove()
    assert seen == [1 + 2 * 1]  # int(4 · 0.5) time steps × int(2 · 0.5) bands, plus cls
    losses = classifier(batch)
    assert torch.isfinite(losses["loss"]) and 0 <= losses["accuracy"] <= 1


def test_multi_label_classifier_uses_bce_on_multi_hot_labels_and_reports_map():
    model = audio_mae(**TINY, target_length=64, num_mel_bins=32)
    classifier = AudioClassifier(model.patchifier, model.encoder, 3, multi_label=True, mask_t_prob=0, mask_f_prob=0)
    labels = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    batch = {"inputs": torch.randn(2, 1, 64, 32), "label": labels}
    logits = classifier.classify(batch)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    assert torch.allclose(classifier(batch)["loss"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="multi-hot labels of 3 classes"):
        classifier({"inputs": batch["inputs"], "label": torch.tensor([0, 1])})
    metrics = classifier.metrics(torch.tensor([[3.0, 0, 1], [0, 2, 0], [1, 0, 2]]),
                                 torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]))
    assert metrics == {"mAP": 1.0}


def test_mean_average_precision_against_a_hand_computation():
    from maekit_audio.metrics import mean_average_precision

    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.6], [0.2, 0.9]])
    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    # class 0: ranked 0.9 (+), 0.8 (−), 0.3 (+) → AP = (1/1 + 2/3) / 2; class 1: ranked 0.9 (−), 0.7 (+)
    # → AP = 1/2 (each precision at a positive's rank, averaged over positives)
    assert mean_average_precision(scores, labels) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)


def test_registered_components_build_from_config():
    decoder = build("decoder", dict(type="audio_mae_decoder", encoder_dim=32, out_dim=256, embed_dim=32, depth=2,
                                    num_heads=4))
    assert isinstance(decoder.blocks[1], SwinCRBlock) and decoder.blocks[1].shift_size == (2, 0)
    assert decoder.blocks[0].shift_size == (0, 0)
    glob = build("decoder", dict(type="audio_mae_decoder", encoder_dim=32, out_dim=256, embed_dim=32, depth=2,
                                 num_heads=4, mode="global"))
    assert not isinstance(glob.blocks[0], SwinCRBlock)
    with pytest.raises(ValueError, match="decoder mode must be"):
        build("decoder", dict(type="audio_mae_decoder", encoder_dim=32, out_dim=256, mode="swin"))


def test_checkpoints_load_at_another_clip_length_and_finetuned_files_load_into_the_classifier(tmp_path):
    from maekit_audio.model import audio_classifier

    from maekit.eval.probe import load_trained_model
    from maekit.io.checkpoint import save_state_dict

    config = dict(type="audio_mae", **TINY, target_length=64, num_mel_bins=32)
    torch.manual_seed(0)
    trained = build("model", config)
    save_state_dict(trained.state_dict(), tmp_path / "pretrained.safetensors")
    # ESC-50's 5 s clips after 10 s pre-training: the fixed tables are rebuilt for the shorter grid
    shorter = load_trained_model({**config, "target_length": 32}, tmp_path / "pretrained.safetensors")
    assert torch.equal(shorter.encoder.blocks[0].attn.qkv.weight, trained.encoder.blocks[0].attn.qkv.weight)
    assert torch.equal(shorter.encoder.pos_embed, audio_position_table((2, 2), 32))
    # an official fine-tuned file, converted: encoder, fc_norm and head all load
    classifier = AudioClassifier(trained.patchifier, trained.encoder, 5)
    with torch.no_grad():
        classifier.head.weight.normal_()
    save_state_dict(classifier.state_dict(), tmp_path / "finetuned.safetensors")
    loaded = audio_classifier(config, 5, checkpoint=str(tmp_path / "finetuned.safetensors"))
    assert torch.equal(loaded.head.weight, classifier.head.weight)
    assert torch.equal(loaded.encoder.blocks[1].mlp.fc2.weight, classifier.encoder.blocks[1].mlp.fc2.weight)
    with pytest.raises(ValueError, match="does not fit the configured classifier"):
        audio_classifier(config, 7, checkpoint=str(tmp_path / "finetuned.safetensors"))


def test_multi_hot_labels_without_multi_label_are_a_clear_error():
    model = audio_mae(**TINY, target_length=64, num_mel_bins=32)
    classifier = AudioClassifier(model.patchifier, model.encoder, 3)
    with pytest.raises(ValueError, match="multi-hot: set finetune.classifier_options.multi_label=True"):
        classifier({"inputs": torch.randn(2, 1, 64, 32), "label": torch.tensor([[1.0, 0, 1], [0, 1, 0]])})
