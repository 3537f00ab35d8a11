"""The tokenizers: DALL-E's encoder layout, its strict loader and the safe reading of OpenAI's
pickle; the VQ tokenizer's training, files and command; PeCo's perceptual term against an
independent computation; BEiT's two views of one crop."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from maekit_beit.dalle import DallEEncoder, DallETokenizer, convert_pickled_encoder, map_pixels
from maekit_beit.views import BEiTViews
from maekit_beit.vq import PerceptualLoss, VQTokenizer, peco_tokenizer

from maekit.cli.main import main
from maekit.io.checkpoint import save_state_dict


# -- DALL-E ----------------------------------------------------------------------------------
def test_dall_e_encoder_has_the_official_names_and_shapes_and_maps_112_pixels_to_14x14_logits():
    torch.manual_seed(0)
    encoder = DallEEncoder().eval()
    shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    assert len(shapes) == 74  # 2 + 4 groups × 2 blocks × 4 convs × (w, b) + 3 id paths × 2 + 2
    assert shapes["blocks.input.w"] == (256, 3, 7, 7)
    assert shapes["blocks.group_1.block_1.res_path.conv_1.w"] == (64, 256, 3, 3)
    assert "blocks.group_1.block_1.id_path.w" not in shapes
    assert shapes["blocks.group_2.block_1.id_path.w"] == (512, 256, 1, 1)
    assert shapes["blocks.group_4.block_2.res_path.conv_4.w"] == (2048, 512, 1, 1)
    assert shapes["blocks.output.conv.w"] == (8192, 2048, 1, 1)
    assert encoder.blocks.group_3.block_2.post_gain == 1 / 64
    with torch.no_grad():
        assert encoder(torch.rand(1, 3, 112, 112)).shape == (1, 8192, 14, 14)


def tiny_dall_e_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return DallEEncoder(n_hid=8, vocab_size=32).state_dict()


def test_dall_e_tokenizer_ids_are_the_arg_max_of_the_logits_of_mapped_pixels(tmp_path):
    state = tiny_dall_e_state()
    save_state_dict({f"encoder.{k}": v for k, v in state.items()}, tmp_path / "dalle.pth")  # MMPretrain's prefix
    tokenizer = DallETokenizer(weights=str(tmp_path / "dalle.pth"), n_hid=8, vocab_size=32)
    images = torch.rand(2, 3, 32, 32)
    reference = DallEEncoder(n_hid=8, vocab_size=32)
    reference.load_state_dict(state)
    with torch.no_grad():
        logits = reference(0.8 * images + 0.1)
    assert torch.equal(tokenizer.encode(images), logits.argmax(1)) and tokenizer.grid(112, 112) == (14, 14)
    assert torch.allclose(map_pixels(torch.tensor([0.0, 1.0])), torch.tensor([0.1, 0.9]))
    assert not list(tokenizer.state_dict())  # never written into training checkpoints

    with pytest.raises(ValueError, match="not a DALL-E encoder of these sizes"):
        DallETokenizer(weights=str(tmp_path / "dalle.pth"), n_hid=16, vocab_size=32)
    save_state_dict({**state, "blocks.extra.w": torch.zeros(1)}, tmp_path / "extra.safetensors")
    with pytest.raises(ValueError, match="unexpected"):
        DallETokenizer(weights=str(tmp_path / "extra.safetensors"), n_hid=8, vocab_size=32)
    with pytest.raises(ValueError, match="has no weights"):
        DallETokenizer().encode(images)


FAKE_DALL_E = {
    "utils.py": """
        import torch
        from torch import nn
        from torch.nn import functional as F

        class Conv2d(nn.Module):
            def __init__(self, n_in, n_out, kw):
                super().__init__()
                self.n_in, self.n_out, self.kw, self.use_float16 = n_in, n_out, kw, True
                self.device, self.requires_grad = torch.device("cpu"), False
                self.w = nn.Parameter(torch.randn(n_out, n_in, kw, kw))
                self.b = nn.Parameter(torch.randn(n_out))
    """,
    "encoder.py": """
        from collections import OrderedDict
        from torch import nn
        from dall_e.utils import Conv2d

        class EncoderBlock(nn.Module):
            def __init__(self, n_in, n_out, n_layers):
                super().__init__()
                hid = n_out // 4
                self.n_in, self.n_out, self.n_layers, self.post_gain = n_in, n_out, n_layers, 1 / n_layers ** 2
                self.id_path = Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
                self.res_path = nn.Sequential(OrderedDict([
                    ("relu_1", nn.ReLU()), ("conv_1", Conv2d(n_in, hid, 3)), ("relu_2", nn.ReLU()), ("conv_2", Conv2d(hid, hid, 3)),
                    ("relu_3", nn.ReLU()), ("conv_3", Conv2d(hid, hid, 3)), ("relu_4", nn.ReLU()), ("conv_4", Conv2d(hid, n_out, 1))]))

        class Encoder(nn.Module):
            def __init__(self, n_hid=8, vocab_size=32):
                super().__init__()
                self.group_count, self.n_hid, self.vocab_size = 4, n_hid, vocab_size
                groups = [("input", Conv2d(3, n_hid, 7))]
                width = n_hid
                for g in range(1, 5):
                    out = n_hid * 2 ** (g - 1)
                    layers = []
                    for b in (1, 2):
                        layers.append((f"block_{b}", EncoderBlock(width, out, 8)))
                        width = out
                    if g < 4:
                        layers.append(("pool", nn.MaxPool2d(kernel_size=2)))
                    groups.append((f"group_{g}", nn.Sequential(OrderedDict(layers))))
                groups.append(("output", nn.Sequential(OrderedDict([("relu", nn.ReLU()), ("conv", Conv2d(width, vocab_size, 1))]))))
                self.blocks = nn.Sequential(OrderedDict(groups))
    """,
}


def pickle_fake_dall_e(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """OpenAI's encoder.pkl in miniature: a whole module of classes named dall_e.* saved with torch.save;
    the package is removed again, so converting cannot import (or run) it."""
    package = folder / "fake" / "dall_e"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, source in FAKE_DALL_E.items():
        (package / name).write_text(textwrap.dedent(source))
    sys.path.insert(0, str(folder / "fake"))
    try:
        from dall_e.encoder import Encoder  # type: ignore[import-not-found]

        module = Encoder()
        torch.save(module, folder / "encoder.pkl")
        state = {k: v.clone() for k, v in module.state_dict().items()}
    finally:
        sys.path.remove(str(folder / "fake"))
        for name in [n for n in sys.modules if n == "dall_e" or n.startswith("dall_e.")]:
            del sys.modules[name]
    return folder / "encoder.pkl", state


class Harmful:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless, but a call a pickle must not be allowed to make


def test_the_pickled_encoder_is_refused_as_weights_and_converted_once_without_running_it(tmp_path):
    pickled, state = pickle_fake_dall_e(tmp_path)
    with pytest.raises(ValueError, match="maekit dalle-convert"):
        DallETokenizer(weights=str(pickled), n_hid=8, vocab_size=32)
    converted = convert_pickled_encoder(pickled)
    assert set(converted) == set(state) and all(torch.equal(converted[k], state[k]) for k in state)
    assert "dall_e" not in sys.modules  # nothing of the pickled classes was imported

    out = tmp_path / "dall_e_encoder.safetensors"
    result = CliRunner().invoke(main, ["dalle-convert", str(pickled), "--out", str(out)])
    assert result.exit_code == 0, result.output
    tokenizer = DallETokenizer(weights=str(out), n_hid=8, vocab_size=32)
    assert tokenizer.encode(torch.rand(1, 3, 16, 16)).shape == (1, 2, 2)

    torch.save({"weights": Harmful()}, tmp_path / "harmful.pkl")
    with pytest.raises(ValueError, match="can read safely.*getcwd"):  # names what it refused
        convert_pickled_encoder(tmp_path / "harmful.pkl")
    result = CliRunner().invoke(main, ["dalle-convert", str(tmp_path / "harmful.pkl"), "--out", str(out)])
    assert result.exit_code != 0 and "Error:" in result.output and "Traceback" not in result.output


# -- VQ --------------------------------------------------------------------------------------
def smooth_images(count: int, size: int = 16, channels: int = 1, seed: int = 0) -> torch.Tensor:
    coarse = torch.rand(count, channels, 4, 4, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_vq_tokenizer_trains_encodes_decodes_and_reloads_from_its_file(tmp_path):
    images = smooth_images(64)
    tokenizer = VQTokenizer(patch_size=4, in_chans=1, vocab_size=16, code_dim=8, hidden=16, fit_steps=150, fit_batch=32,
                            lr=3e-3)
    tokenizer.fit([images], seed=0)
    report = tokenizer.fit_report
    assert report["reconstruction_loss"] < 0.3 * images.var().item() and report["codes_used"] >= 4
    ids = tokenizer.encode(images[:4])
    assert ids.shape == (4, 4, 4) and ids.dtype == torch.long and 0 <= ids.min() and ids.max() < 16
    assert tokenizer.decode(ids).shape == (4, 1, 16, 16)
    assert not any(p.requires_grad for p in tokenizer.parameters())

    codebook = tokenizer.quantizer.codebook.clone()
    tokenizer.train()  # a training method's train(): the codebook must not follow what it encodes
    tokenizer.encode(torch.randn(8, 1, 16, 16) * 5)
    assert torch.equal(tokenizer.quantizer.codebook, codebook) and not tokenizer.training

    [path] = tokenizer.save_fitted(tmp_path)
    again = VQTokenizer(patch_size=4, in_chans=1, vocab_size=16, code_dim=8, hidden=16, weights=str(path))
    assert torch.equal(again.encode(images[:4]), ids)
    with pytest.raises(ValueError, match="does not fit this vq tokenizer"):
        VQTokenizer(patch_size=4, in_chans=1, vocab_size=32, code_dim=8, hidden=16, weights=str(path))
    with pytest.raises(ValueError, match="power of 2"):
        VQTokenizer(patch_size=6)
    with pytest.raises(ValueError, match="has not been fitted"):
        VQTokenizer(patch_size=4, in_chans=1, vocab_size=16).encode(images)


def test_tokenizer_train_command_writes_a_tokenizer_the_config_then_reads(tmp_path):
    config = tmp_path / "vq_digits.py"
    config.write_text(textwrap.dedent("""
        model = dict(type="beit", size=None, img_size=16, patch_size=4, in_chans=1,
                     encoder=dict(embed_dim=32, depth=1, num_heads=2), num_masking=6, min_block=2,
                     tokenizer=dict(type="vq", patch_size=4, in_chans=1, vocab_size=16, code_dim=8, hidden=16,
                                    fit_samples=64, fit_steps=5, fit_batch=16))
        data = dict(dataset=dict(type="digits", split="train", size=16, channels=1),
                    transform=dict(type="mae_augment", size=16, flip=False), batch_size=32)
        schedule = dict(max_iters=2)
    """))
    out = tmp_path / "vq.safetensors"
    result = CliRunner().invoke(main, ["tokenizer-train", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.with_suffix(".json").is_file() and '"codes_used"' in result.output
    from maekit.engine import load_config
    from maekit.registry import build

    model = build("model", load_config(str(config), {"model.tokenizer.weights": str(out)}).model)
    assert model.target.tokenizer.fitted
    result = CliRunner().invoke(main, ["tokenizer-train", str(config), "--out", str(out), "--cfg-options",
                                       f"model.tokenizer.weights={out}"])
    assert result.exit_code != 0 and "Error:" in result.output and "already reads weights" in result.output


def test_peco_perceptual_term_is_the_sum_of_per_layer_mean_squared_feature_distances(tmp_path):
    from maekit.registry import build

    torch.manual_seed(0)
    mae = build("model", dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                              in_chans=1, encoder=dict(embed_dim=32, depth=4, num_heads=2), decoder_embed_dim=16,
                              decoder_depth=1, decoder_num_heads=2))
    save_state_dict(mae.state_dict(), tmp_path / "mae.safetensors")
    section = dict(checkpoint=str(tmp_path / "mae.safetensors"), size=None, encoder_name="vit_tiny_patch16_224",
                   encoder=dict(embed_dim=32, depth=4, num_heads=2))
    loss = PerceptualLoss(section, (16, 16), 4, 1)
    assert loss.layers == (1, 2, 3, 4)  # the end of each quarter of the depth (3, 6, 9, 12 for ViT-B)
    images, rebuilt = smooth_images(3), smooth_images(3, seed=5).requires_grad_(True)
    value = loss(rebuilt, images)
    patchify = mae.patchifier
    states = mae.encoder.forward_intermediates(patchify(images), [1, 2, 3, 4]).features
    others = mae.encoder.forward_intermediates(patchify(rebuilt.detach()), [1, 2, 3, 4]).features
    expected = sum(((others[t] - states[t]) ** 2).sum() / states[t].numel() for t in (1, 2, 3, 4))
    assert torch.allclose(value, expected, rtol=1e-5)
    value.backward()
    assert rebuilt.grad is not None and rebuilt.grad.abs().sum() > 0
    assert float(loss(images, images)) == 0.0

    with pytest.raises(ValueError, match="perceptual=dict"):
        peco_tokenizer()
    with pytest.raises(ValueError, match="unknown key 'layer'"):
        peco_tokenizer(perceptual=dict(checkpoint="x", layer=3))
    with pytest.raises(ValueError, match="block numbers 1..4"):
        PerceptualLoss({**section, "layers": (5,)}, (16, 16), 4, 1)
    tokenizer = peco_tokenizer(perceptual=section, patch_size=4, in_chans=1, vocab_size=8, code_dim=8, hidden=8,
                               fit_steps=3, fit_batch=4)
    tokenizer.fit([smooth_images(8)])
    assert tokenizer.fitted and tokenizer.fit_report["perceptual_loss"] > 0


# -- the two views ---------------------------------------------------------------------------
def test_beit_views_are_one_crop_at_two_sizes_and_feed_the_dall_e_tokenizer(tmp_path):
    from maekit.data.views import AugmentedView
    from maekit.registry import build

    views = BEiTViews(size=32, tokenizer_size=16, scale=(0.3, 1.0), color_jitter=0.4, mean=(0.5,) * 3, std=(0.5,) * 3)
    torch.manual_seed(0)
    image = smooth_images(1, size=48, channels=3)[0]
    out = views(image)
    assert out["image"].shape == (3, 32, 32) and out["tokenizer_view"].shape == (3, 16, 16)
    assert 0 <= out["tokenizer_view"].min() and out["tokenizer_view"].max() <= 1
    shrunk = torch.nn.functional.interpolate((out["image"] * 0.5 + 0.5)[None], size=(16, 16), mode="area")[0]
    assert (shrunk - out["tokenizer_view"]).abs().mean() < 0.03  # the same crop, flip and colours

    save_state_dict(tiny_dall_e_state(), tmp_path / "dalle.safetensors")
    model = build("model", dict(type="beit", size=None, img_size=32, patch_size=2, encoder=dict(embed_dim=16, depth=1, num_heads=2),
                                num_masking=100, min_block=10, drop_path_rate=0.0,
                                tokenizer=dict(type="dall_e", weights=str(tmp_path / "dalle.safetensors"), n_hid=8, vocab_size=32)))
    data = AugmentedView(dict(type="digits", split="train", size=48, channels=3), dict(type="beit_views", size=32,
                         tokenizer_size=128, color_jitter=0.0))
    batch = torch.utils.data.default_collate([data[i] for i in range(2)])
    assert batch["views"]["tokenizer_view"].shape == (2, 3, 128, 128)  # 128 px → 16×16 ids for 16×16 patches
    losses = model(batch)
    assert torch.isfinite(losses["loss"]) and losses["cross_entropy"] > 0
