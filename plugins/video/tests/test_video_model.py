"""VideoMAE, OmniMAE and MaskFeat against independent computations and transformers' VideoMAE."""
from __future__ import annotations

import torch
from maekit_video.model import MaskFeat, VideoClassifier, maskfeat, omnimae, videomae

from maekit.nn.masking import GivenMasker
from maekit.nn.patchify import CubePatchifier, cube_unpatchify

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TINY = dict(size=None, encoder=dict(embed_dim=32, depth=2, num_heads=4), num_frames=4, img_size=32, patch_size=8,
            tubelet_size=2)
VIDEOMAE_TINY = dict(TINY, decoder_embed_dim=16, decoder_depth=2, decoder_num_heads=2)


def test_cube_embedding_on_visible_cubes_is_the_references_conv3d():
    model = videomae(**VIDEOMAE_TINY)
    clip = torch.randn(1, 3, 4, 32, 32)
    conv = model.encoder.patch_embed.proj(clip).flatten(2).transpose(1, 2)
    ours = model.encoder.embed_tokens(CubePatchifier(8, 2, 3)(clip).values)
    torch.testing.assert_close(ours, conv, rtol=1e-5, atol=1e-5)


def hf_pretraining_pair():
    from maekit_video.interop import state_from_transformers
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    config = VideoMAEConfig(image_size=32, patch_size=8, num_channels=3, num_frames=4, tubelet_size=2, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, decoder_hidden_size=16,
                            decoder_num_hidden_layers=2, decoder_num_attention_heads=2, decoder_intermediate_size=64,
                            layer_norm_eps=1e-6, use_mean_pooling=False, norm_pix_loss=True, qkv_bias=True)
    torch.manual_seed(0)
    hf = VideoMAEForPreTraining(config).eval()
    with torch.no_grad():  # non-zero q/v biases, so their placement is tested too
        for name, parameter in hf.named_parameters():
            if name.endswith(("q_bias", "v_bias", "query.bias", "value.bias")):
                parameter.normal_(std=0.1)
    ours = videomae(**VIDEOMAE_TINY).eval()
    ours.load_state_dict(state_from_transformers(hf.state_dict()), strict=True)
    ours.decoder.norm.eps = 1e-5  # transformers' decoder norm keeps LayerNorm's default eps (the reference: 1e-6)
    return hf, ours


def test_parity_with_transformers_videomae_on_copied_weights():
    hf, ours = hf_pretraining_pair()
    torch.manual_seed(1)
    clips = torch.randn(2, 3, 4, 32, 32)
    spatial = torch.zeros(2, 16, dtype=torch.bool)
    spatial[0, [1, 4, 5, 9, 10, 15]] = True
    spatial[1, [0, 2, 3, 7, 12, 14]] = True
    bool_masked_pos = spatial.repeat(1, 2)
    with torch.no_grad():
        reference = hf(clips.transpose(1, 2), bool_masked_pos=bool_masked_pos)
        encoded = hf.videomae(clips.transpose(1, 2), bool_masked_pos=bool_masked_pos).last_hidden_state
        ours.masker = GivenMasker(bool_masked_pos)
        out = ours.run_steps(clips)
        losses = ours.compute_loss(out)
    torch.testing.assert_close(ours.encoder.positions.table, hf.videomae.embeddings.position_embeddings[0].float(),
                               rtol=0, atol=0)
    torch.testing.assert_close(out.latents, encoded, rtol=1e-5, atol=1e-5)
    at_masked = out.pred[bool_masked_pos].reshape(2, -1, out.pred.shape[-1])
    torch.testing.assert_close(at_masked, reference.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses["loss"], reference.loss, rtol=1e-5, atol=1e-6)


def test_videomae_target_is_per_cube_and_channel_of_unnormalised_pixels_with_eps_outside_the_sqrt():
    model = videomae(**VIDEOMAE_TINY)
    clips = torch.randn(2, 3, 4, 32, 32)
    target = model.make_target(model.tokenize(clips), clips)
    # independent: un-normalise, (B, T/2, H/8, W/8, 2, 8, 8, C), normalise over the 128 pixels per channel
    frames = clips.transpose(1, 2) * torch.tensor(STD).view(1, 1, 3, 1, 1) + torch.tensor(MEAN).view(1, 1, 3, 1, 1)
    cubes = frames.reshape(2, 2, 2, 3, 4, 8, 4, 8).permute(0, 1, 4, 6, 2, 5, 7, 3).reshape(2, 32, 128, 3)
    expected = (cubes - cubes.mean(-2, keepdim=True)) / (cubes.var(-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    torch.testing.assert_close(target, expected.reshape(2, 32, 384), rtol=1e-5, atol=1e-5)
    restored = model.target.to_values(target, model.tokenize(clips))
    torch.testing.assert_close(restored, model.tokenize(clips).values, rtol=1e-4, atol=1e-4)


def test_maskfeat_encoder_sees_every_token_with_removed_ones_replaced():
    model = maskfeat(**TINY).eval()
    clips = torch.randn(2, 3, 4, 32, 32)
    tokens = model.tokenize(clips)
    mask = GivenMasker(torch.arange(32) % 3 == 0)(tokens)
    changed = clips.clone()
    removed_cube = cube_unpatchify(mask.masked.unsqueeze(-1).expand_as(tokens.values), tokens.meta["grid_size"], (2, 8, 8))
    changed[removed_cube.bool()] = 5.0  # what removed cubes hold must not matter
    outputs = []
    for x in (clips, changed):
        t = model.tokenize(x)
        latents, taps = model.encode_visible(model.encoder_input(x, t, mask))
        outputs.append(model.decode(latents, mask, t, taps))
    assert isinstance(model, MaskFeat) and outputs[0].shape == (2, 32, 3 * 9)
    torch.testing.assert_close(outputs[0], outputs[1])
    losses = model({"inputs": clips})
    assert losses["loss"].requires_grad and torch.isfinite(losses["loss"])
    image_model = maskfeat(**{**TINY, "num_frames": 2}, video=False)
    assert image_model({"inputs": torch.randn(2, 3, 32, 32)})["loss"].isfinite()


def test_omnimae_images_are_one_tubelet_take_the_first_table_rows_and_their_own_ratio():
    model = omnimae(**TINY)
    image = torch.randn(2, 3, 32, 32)
    tokens = model.tokenize(image)
    assert tokens.meta["grid_size"] == (1, 4, 4)
    assert torch.equal(model.tokenize(image[:, :, None].repeat(1, 1, 2, 1, 1)).values, tokens.values)
    assert torch.equal(model.encoder.position_embedding(tokens)[0], model.encoder.positions.table[:16])
    assert model.make_mask(tokens).num_visible == 16 - int(16 * 0.9)
    video = model.tokenize(torch.randn(2, 3, 4, 32, 32))
    assert model.make_mask(video).num_visible == 32 - int(32 * 0.95)
    target = model.make_target(tokens, image)  # eps inside the sqrt, per patch and channel
    pixels = tokens.values * torch.tensor(STD).repeat(128) + torch.tensor(MEAN).repeat(128)
    grouped = pixels.reshape(2, 16, 128, 3)
    expected = (grouped - grouped.mean(2, keepdim=True)) / (grouped.var(2, keepdim=True) + 1e-6).sqrt()
    torch.testing.assert_close(target, expected.reshape(2, 16, 384), rtol=1e-5, atol=1e-5)
    assert model(image)["loss"].isfinite() and model(torch.randn(2, 3, 4, 32, 32))["loss"].isfinite()


def test_classifier_repeats_labels_for_augmented_copies_and_averages_test_views():
    model = videomae(**VIDEOMAE_TINY)
    classifier = VideoClassifier(model.patchifier, model.encoder, num_classes=3)
    assert isinstance(classifier.encoder.norm, torch.nn.Identity)
    clips = torch.randn(2, 2, 3, 4, 32, 32)
    losses = classifier({"inputs": clips, "label": torch.tensor([0, 2])})
    assert losses["loss"].isfinite()
    classifier.eval()
    with torch.no_grad():
        merged = classifier.classify({"inputs": clips})
        singles = torch.stack([classifier.classify({"inputs": clips[:, v]}).softmax(-1) for v in range(2)]).mean(0)
    torch.testing.assert_close(merged.exp(), singles)
