import pytest
import timm
import torch

from maekit.methods.mae import MAE_PRESETS
from maekit.nn.losses import MaskedL1Loss, MaskedMSELoss
from maekit.nn.targets import NormPixelTarget
from maekit.structures import Mask, Tokens
from tests.conftest import tiny_mae


def test_forward_returns_named_losses_and_reconstruct_shapes():
    model = tiny_mae()
    images = torch.randn(2, 3, 32, 32)
    losses = model(images)
    assert set(losses) == {"loss", "mse"} and losses["loss"].dim() == 0
    pred, mask, target = model.reconstruct(images)
    assert pred.shape == target.shape == (2, 16, 8 * 8 * 3)
    assert mask.num_visible == 4 and mask.masked.shape == (2, 16)
    losses["loss"].backward()
    assert model.encoder.blocks[0].attn.qkv.weight.grad is not None


def test_encoder_sees_only_visible_tokens():
    model = tiny_mae(mask_ratio=0.75)
    seen = {}

    def record(module, inputs, output):
        seen["shape"] = tuple(inputs[0].shape)

    model.encoder.blocks[0].register_forward_hook(record)
    model(torch.randn(2, 3, 32, 32))
    assert seen["shape"] == (2, 1 + 4, 64)  # cls + int(16 × 0.25)


def test_encode_is_unmasked_by_default_and_honours_a_mask():
    model = tiny_mae().eval()
    images = torch.randn(2, 3, 32, 32)
    assert model.encode(images).shape == (2, 17, 64)
    mask = model.masker(model.tokenize(images))
    assert model.encode(images, mask).shape == (2, 5, 64)


def test_hidden_states_are_the_pass_of_forward_layer_by_layer():
    model = tiny_mae().eval()
    tokens = model.tokenize(torch.randn(2, 3, 32, 32))
    states = model.encoder.hidden_states(tokens)
    assert len(states) == 1 + len(model.encoder.blocks)
    torch.testing.assert_close(model.encoder.norm(states[-1]), model.encoder(tokens))
    torch.testing.assert_close(states[1], model.encoder.blocks[0](states[0]))


def test_reference_init_conventions():
    model = tiny_mae()
    encoder, decoder = model.encoder, model.decoder
    assert not encoder.pos_embed.requires_grad and not decoder.pos_embed.requires_grad
    assert "encoder.pos_embed" in model.state_dict() and "decoder.pos_embed" in model.state_dict()
    assert torch.count_nonzero(encoder.pos_embed[0, 0]) == 0  # cls row of the table is zeros
    assert encoder.blocks[0].attn.qkv.bias is not None and torch.all(encoder.blocks[0].attn.qkv.bias == 0)
    assert encoder.norm.eps == 1e-6 and decoder.norm.eps == 1e-6
    assert 0.005 < decoder.mask_token.std().item() < 0.05


def test_norm_pix_target_matches_an_independent_computation():
    values = torch.randn(2, 5, 12)
    expected = torch.empty_like(values)
    for b in range(2):
        for n in range(5):
            v = values[b, n]
            mean = v.sum() / 12
            var = ((v - mean) ** 2).sum() / 11  # unbiased, as torch.var in the reference
            expected[b, n] = (v - mean) / torch.sqrt(var + 1e-6)
    tokens = Tokens(values, torch.zeros(2, 5, 2))
    assert torch.allclose(NormPixelTarget()(tokens), expected, atol=1e-6)


def test_loss_counts_removed_tokens_only():
    pred, target = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    masked = torch.tensor([[1, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]]).float()
    mask = Mask(ids_keep=torch.zeros(2, 4, dtype=torch.long), ids_restore=torch.zeros(2, 6, dtype=torch.long), masked=masked)
    per_token = ((pred - target) ** 2).mean(-1)
    expected = (per_token * masked).sum() / masked.sum()
    assert torch.allclose(MaskedMSELoss()(pred, target, mask)["loss"], expected)
    changed = pred.clone()
    changed[masked == 0] += 10.0  # kept tokens do not count
    assert torch.allclose(MaskedMSELoss()(changed, target, mask)["mse"], expected)
    l1 = ((pred - target).abs().mean(-1) * masked).sum() / masked.sum()
    assert torch.allclose(MaskedL1Loss(weight=2.0)(pred, target, mask)["loss"], 2 * l1)


def test_non_square_images_other_channels_and_resolution():
    model = tiny_mae(img_size=(32, 48), in_chans=1)
    assert model(torch.randn(2, 1, 32, 48))["loss"].isfinite()
    # another input size: the tables are resampled, the model still runs
    assert model(torch.randn(1, 1, 48, 64))["loss"].isfinite()
    with pytest.raises(ValueError, match="expected images with 1 channels"):
        model(torch.randn(2, 3, 32, 48))


def test_encoder_state_dict_loads_into_timm_with_only_the_head_missing():
    model = tiny_mae()
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4)
    state = {k[len("encoder."):]: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    result = vit.load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == ["head.bias", "head.weight"] and not result.unexpected_keys
    # and timm computes the same features as our encoder on an unmasked batch
    images = torch.randn(2, 3, 32, 32)
    vit.eval(), model.eval()
    assert torch.allclose(vit.forward_features(images), model.encode(images), atol=1e-5)


def test_presets_name_the_paper_sizes():
    expected = {"tiny": (192, 12), "small": (384, 12), "base": (768, 12), "large": (1024, 24), "huge": (1280, 32)}
    for size, (width, _depth) in expected.items():
        cfg = timm.models.get_pretrained_cfg(MAE_PRESETS[size])
        assert cfg is not None
        model = timm.create_model(MAE_PRESETS[size], pretrained=False, num_classes=0, depth=1) if size != "huge" else None
        if model is not None:
            assert model.embed_dim == width
    base = tiny_mae(size="base", encoder_name=None, img_size=32, patch_size=16, encoder=dict(depth=1))
    assert base.encoder.embed_dim == 768 and base.decoder.embed.out_features == 32


def test_unknown_size_and_encoder_are_clear_errors():
    with pytest.raises(ValueError, match="mae size must be one of tiny, small, base, large, huge"):
        tiny_mae(size="gigantic", encoder_name=None)
    with pytest.raises(ValueError, match="encoder model_name 'resnet50' is not a plain timm VisionTransformer"):
        tiny_mae(encoder_name="resnet50", encoder={})


def test_generic_transformer_encoder_and_decoder_on_coordinates():
    from maekit.model import MaskedAutoencoder

    class PointPatches(torch.nn.Module):
        def forward(self, batch):
            return Tokens(values=batch["features"], coords=batch["centres"])

    model = MaskedAutoencoder(
        patchifier=PointPatches(), masker=dict(type="block_mask", mask_ratio=0.6),
        encoder=dict(type="transformer_encoder", in_dim=9, embed_dim=48, depth=1, num_heads=4, coord_dim=3),
        decoder=dict(type="transformer_decoder", encoder_dim=48, out_dim=9, embed_dim=24, depth=1, num_heads=4),
        target=dict(type="pixels"), loss=dict(type="masked_l1"))
    batch = {"features": torch.randn(2, 20, 9), "centres": torch.randn(2, 20, 3)}
    losses = model(batch)
    assert set(losses) == {"loss", "l1"} and losses["loss"].isfinite()
