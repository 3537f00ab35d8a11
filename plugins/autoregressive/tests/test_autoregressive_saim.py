"""SAIM: the two attention masks against a direct construction from a permutation, the information
each prediction may use, the blurred target against the reference's kernel formula, the loss."""
from __future__ import annotations

import math

import pytest
import torch
from maekit_autoregressive.saim import SAIM, content_attention_mask, gaussian_kernel, query_attention_mask, saim

from maekit.nn.patchify import patchify
from maekit.structures import Mask


def tiny_saim(seed: int = 0, **options) -> SAIM:
    torch.manual_seed(seed)
    return saim(size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1,
                encoder=dict(embed_dim=32, depth=2, num_heads=2), **options).eval()


def test_attention_masks_match_a_direct_construction_from_a_permutation():
    length = 7
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        permutation = torch.randperm(length, generator=generator)  # permutation[r] = the token generated r-th
        rank = torch.empty(length, dtype=torch.long)
        rank[permutation] = torch.arange(length)
        order = (rank.float() + 0.5) / length  # any increasing map of the ranks is the same order
        content, query = content_attention_mask(order[None]), query_attention_mask(order[None])
        assert content.shape == query.shape == (1, 1, length + 1, length + 1)
        for i in range(length + 1):
            for j in range(length + 1):
                if i == 0:  # the class token sees only itself
                    expected_content = expected_query = j == 0
                elif j == 0:  # everyone sees the class token
                    expected_content = expected_query = True
                else:
                    expected_content = bool(rank[j - 1] <= rank[i - 1])
                    expected_query = bool(rank[j - 1] < rank[i - 1])
                assert bool(content[0, 0, i, j]) == expected_content, (seed, i, j)
                assert bool(query[0, 0, i, j]) == expected_query, (seed, i, j)


def test_each_prediction_uses_only_patches_earlier_in_the_order():
    model, images = tiny_saim(), torch.randn(2, 1, 16, 16)
    tokens = model.tokenize(images)
    order = torch.rand(2, tokens.num_tokens, generator=torch.Generator().manual_seed(0))
    mask = model.make_mask(tokens, noise=order)
    assert torch.equal(mask.order, order) and not mask.masked.any()

    def predict(values: torch.Tensor) -> torch.Tensor:
        changed = type(tokens)(values=values, coords=tokens.coords, meta=tokens.meta)
        latents, taps = model.encode_visible(model.encoder_input(None, changed, mask))
        return model.decode(latents, mask, changed, taps)

    with torch.no_grad():
        before = predict(tokens.values)
        for j in (0, 5, 11):
            values = tokens.values.clone()
            values[:, j] += 3.0
            after = predict(values)
            same = (after - before).abs().amax(-1) < 1e-5  # B×N: predictions the change did not reach
            not_later = order <= order[:, j:j + 1]  # the patch itself and those generated before it
            assert same[not_later].all(), j  # a patch's own pixels never reach its prediction
            assert not same[~not_later].any(), j  # every later patch sees it


def test_target_is_the_reference_blur_then_per_patch_normalisation():
    size, sigma = 9, 1.0
    position = torch.stack(torch.meshgrid([torch.arange(size), torch.arange(size)], indexing="ij"), dim=-1)
    centre = torch.tensor([(size - 1) // 2] * 2)
    std = torch.tensor([sigma, sigma])
    reference = 1 / (2 * math.pi * torch.prod(std)) * math.e ** (-((position - centre) ** 2 / std ** 2).sum(-1) / 2)
    reference = reference / reference.sum()
    assert torch.allclose(gaussian_kernel(size, sigma), reference.float(), atol=1e-7)

    model, images = tiny_saim(), torch.randn(2, 1, 16, 16)
    tokens = model.tokenize(images)
    blurred = torch.nn.functional.conv2d(images, reference.float().view(1, 1, size, size), padding=size // 2)
    values = patchify(blurred, (4, 4))
    expected = (values - values.mean(-1, keepdim=True)) / (values.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert torch.allclose(model.make_target(tokens, images), expected, atol=1e-5)


def test_loss_is_the_mse_over_every_patch_and_the_encoder_sees_everything_after():
    model, images = tiny_saim(), torch.randn(3, 1, 16, 16)
    out = model.run_steps(images)
    assert out.pred.shape == out.target.shape == (3, 16, 16)
    expected = ((out.pred - out.target) ** 2).mean()
    assert torch.allclose(model.compute_loss(out)["loss"], expected, atol=1e-6)
    # downstream: the plain ViT, no order, full attention — equal to timm's own forward on the same weights
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=16, patch_size=4, in_chans=1, embed_dim=32,
                            depth=2, num_heads=2).eval()
    vit.load_state_dict(model.encoder.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.allclose(model.encode(images), vit.forward_features(images), atol=1e-5)


def test_query_depth_must_divide_the_encoder_and_a_mask_without_order_is_refused():
    with pytest.raises(ValueError, match="query_depth 3 must divide"):
        tiny_saim(query_depth=3)
    model = tiny_saim(query_depth=1)
    assert model.encoder_taps == (2,)
    rows = model.panels(torch.rand(2, 1, 16, 16), mean=(0.5,), std=(0.5,))  # input | blurred target | prediction
    assert len(rows) == 2 and [panel.shape for panel in rows[0]] == [(16, 16, 1)] * 3
    tokens = model.tokenize(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="random_order"):
        model.encoder_input(None, tokens, Mask.keep_all(1, tokens.num_tokens))


def test_every_trainable_parameter_gets_a_gradient_and_the_unused_final_norm_is_frozen():
    model = tiny_saim().train()
    model(torch.randn(2, 1, 16, 16))["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert not model.encoder.norm.weight.requires_grad  # the reference's pre-training ViT has no final norm


def test_blurred_target_is_float32_and_the_same_under_bf16_autocast():
    model, images = tiny_saim(), torch.randn(2, 1, 16, 16)
    tokens = model.tokenize(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = model.make_target(tokens, images)
    assert under_autocast.dtype == torch.float32
    assert torch.allclose(under_autocast, model.make_target(tokens, images), atol=1e-5)
