"""maekit's `mae` against transformers' ViTMAEForPreTraining: same weights, images and noise give
the same loss, predictions and mask."""
import pytest
import torch

transformers = pytest.importorskip("transformers")  # a declared test dependency (pip install maekit[test])
from transformers import ViTMAEConfig, ViTMAEForPreTraining  # noqa: E402

from maekit.io.convert import convert_state_dict  # noqa: E402
from tests.conftest import tiny_mae  # noqa: E402


def _pair(norm_pix_loss: bool = True, mask_ratio: float = 0.75):
    config = ViTMAEConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                          decoder_hidden_size=32, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
                          decoder_intermediate_size=128, image_size=32, patch_size=8, num_channels=3,
                          layer_norm_eps=1e-6, norm_pix_loss=norm_pix_loss, mask_ratio=mask_ratio)
    peer = ViTMAEForPreTraining(config).eval()
    ours = tiny_mae(decoder_depth=2, mask_ratio=mask_ratio, norm_pix_loss=norm_pix_loss).eval()
    ours.load_state_dict(convert_state_dict(peer.state_dict(), "transformers", "maekit"))
    return peer, ours


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_same_loss_predictions_and_mask(norm_pix_loss):
    peer, ours = _pair(norm_pix_loss)
    images, noise = torch.randn(4, 3, 32, 32), torch.rand(4, 16)
    with torch.no_grad():
        expected = peer(pixel_values=images, noise=noise)
        pred, mask, _ = ours.reconstruct(images, noise)
        loss = ours(images, noise)["loss"]
    assert torch.allclose(loss, expected.loss, rtol=1e-5, atol=0)
    assert torch.allclose(pred, expected.logits, atol=1e-5)
    assert torch.equal(mask.masked, expected.mask)
    assert torch.equal(mask.ids_restore, expected.ids_restore)


def test_same_loss_at_another_resolution_with_position_interpolation():
    peer, ours = _pair()
    images, noise = torch.randn(2, 3, 48, 48), torch.rand(2, 36)
    with torch.no_grad():
        expected = peer(pixel_values=images, noise=noise, interpolate_pos_encoding=True)
        loss = ours(images, noise)["loss"]
    assert torch.allclose(loss, expected.loss, rtol=1e-5, atol=0)


def test_same_gradients():
    peer, ours = _pair()
    images, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    peer(pixel_values=images, noise=noise).loss.backward()
    ours(images, noise)["loss"].backward()
    theirs = peer.vit.embeddings.patch_embeddings.projection.weight.grad
    assert torch.allclose(ours.encoder.patch_embed.proj.weight.grad, theirs, atol=1e-6, rtol=1e-4)


def test_transformers_4_key_layout_converts_the_same():
    peer, _ = _pair()
    v5 = peer.state_dict()
    renames = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
               "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense",
               "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    v4 = {}
    for key, value in v5.items():
        key = key.replace("vit.layers.", "vit.encoder.layer.")
        for new, old in renames.items():
            key = key.replace(f".{new}.", f".{old}.")
        v4[key] = value
    assert "vit.encoder.layer.0.attention.attention.query.weight" in v4
    converted_v4 = convert_state_dict(v4, "auto", "maekit")
    converted_v5 = convert_state_dict(v5, "auto", "maekit")
    assert converted_v4.keys() == converted_v5.keys()
    assert all(torch.equal(converted_v4[k], converted_v5[k]) for k in converted_v5)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_exported_transformers_folder_loads_offline_with_identical_outputs(tmp_path, norm_pix_loss):
    """`maekit export --format transformers`: ViTMAEForPreTraining and ViTMAEModel load the folder
    with every weight in place (one channel, another mask ratio) and give our loss, predictions,
    mask and latents."""
    from transformers import ViTMAEModel

    from maekit.io.export import export_transformers

    torch.manual_seed(0)
    ours = tiny_mae(img_size=40, in_chans=1, decoder_depth=2, mask_ratio=0.6, norm_pix_loss=norm_pix_loss).eval()
    export_transformers(ours, tmp_path / "hf")
    peer, info = ViTMAEForPreTraining.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert peer.config.norm_pix_loss is norm_pix_loss and peer.config.mask_ratio == 0.6
    images, noise = torch.randn(3, 1, 40, 40), torch.rand(3, 25)
    with torch.no_grad():
        expected = peer.eval()(pixel_values=images, noise=noise)
        pred, mask, _ = ours.reconstruct(images, noise)
        loss = ours(images, noise)["loss"]
        features = ours.encode(images)
        encoder_only = ViTMAEModel.from_pretrained(tmp_path / "hf", mask_ratio=0.0).eval()
        hidden = encoder_only(pixel_values=images, noise=torch.arange(25.0).expand(3, -1)).last_hidden_state
    assert torch.allclose(loss, expected.loss, rtol=1e-5, atol=0)
    assert torch.allclose(pred, expected.logits, atol=1e-5)
    assert torch.equal(mask.masked, expected.mask)
    assert torch.allclose(hidden, features, atol=1e-5)


def test_export_to_transformers_refuses_what_vitmae_cannot_be(tmp_path):
    from maekit.io.export import export_transformers

    with pytest.raises(ValueError, match="no equivalent of this model's masker BlockMasker"):
        export_transformers(tiny_mae(masking="block_mask"), tmp_path / "a")
    with pytest.raises(ValueError, match="no equivalent of this model's loss MaskedL1Loss"):
        export_transformers(tiny_mae(loss="masked_l1"), tmp_path / "b")
    with pytest.raises(ValueError, match="square images"):
        export_transformers(tiny_mae(img_size=(32, 48)), tmp_path / "c")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_convert_to_transformers_round_trips_and_names_what_has_no_place(tmp_path):
    """`maekit convert --to transformers`: the keys export writes, back to maekit's unchanged."""
    from maekit.io.checkpoint import CheckpointError

    ours = tiny_mae(decoder_depth=2).state_dict()
    theirs = convert_state_dict(ours, "maekit", "transformers")
    assert "vit.encoder.layer.1.attention.attention.value.bias" in theirs and "decoder.decoder_pred.weight" in theirs
    back = convert_state_dict(theirs, "auto", "maekit")
    assert back.keys() == ours.keys() and all(torch.equal(back[k], ours[k]) for k in ours)
    with pytest.raises(CheckpointError, match="'head.weight' has no place in transformers' ViTMAE"):
        convert_state_dict({**ours, "head.weight": torch.zeros(2, 2)}, "maekit", "transformers")
