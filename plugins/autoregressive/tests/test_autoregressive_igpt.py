"""iGPT: the palette against an independent nearest-colour computation, parity with transformers'
ImageGPT on copied weights, the two objectives' information flow and reductions, completions.
Run alone with: MAEKIT_PLUGINS=maekit-autoregressive python -m pytest plugins/autoregressive/tests"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from maekit_autoregressive.igpt import IGPT, from_transformers, igpt, to_transformers
from maekit_autoregressive.palette import PalettePixels, PaletteTokenizer

from maekit.structures import Mask

COLOURS, GRID = 12, 4


def fitted_palette(colours: int = COLOURS, channels: int = 3, seed: int = 0) -> PaletteTokenizer:
    palette = PaletteTokenizer(colours, channels)
    palette.centres.copy_(torch.rand(colours, channels, generator=torch.Generator().manual_seed(seed)) * 2 - 1)
    palette.is_fitted.fill_(True)
    return palette


def tiny_igpt(objective: str = "autoregressive", seed: int = 0) -> IGPT:
    torch.manual_seed(seed)
    model = igpt(objective, img_size=GRID, channels=3, num_colors=COLOURS, embed_dim=32, depth=2, num_heads=4)
    model.patchifier.tokenizer.load_state_dict(fitted_palette().state_dict())
    torch.nn.init.normal_(model.decoder.pred.weight, std=0.5)  # wtet starts at zero: give the logits something
    return model.eval()


def images(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, GRID, GRID, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_palette_ids_are_the_nearest_centres_and_decode_to_them():
    palette, x = fitted_palette(), images()
    ids = palette.encode(x)
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    centres = palette.centres.numpy()
    nearest = np.argmin(((pixels[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(ids.flatten().numpy(), nearest)
    assert torch.equal(palette.decode(ids), palette.centres[ids].permute(0, 3, 1, 2))
    assert torch.equal(palette.encode(palette.decode(ids)), ids)  # a centre's colour maps back to that centre


def test_palette_fit_is_kmeans_of_the_pixels_and_repeatable():
    # three colour clusters: a palette of 3 finds them, whatever k-means' start
    centres = torch.tensor([[-0.8, -0.8, -0.8], [0.0, 0.5, -0.5], [0.9, 0.9, 0.9]])
    noise = torch.randn(600, 3, generator=torch.Generator().manual_seed(0)) * 0.02
    pixels = (centres.repeat(200, 1) + noise).clamp(-1, 1)
    batch = pixels.T.reshape(1, 3, 20, 30)
    first, second = PaletteTokenizer(3, 3), PaletteTokenizer(3, 3)
    first.fit([batch], seed=0)
    second.fit([batch], seed=0)
    assert first.fitted and torch.equal(first.centres, second.centres)
    found = first.centres[torch.cdist(centres, first.centres).argmin(1)]
    assert torch.allclose(found, centres, atol=0.01)


def test_palette_errors_name_what_is_wrong(tmp_path):
    palette = PaletteTokenizer(4, 3)
    with pytest.raises(ValueError, match="has not been fitted"):
        palette.encode(images())
    palette = fitted_palette(4)
    with pytest.raises(ValueError, match=r"\[-1, 1\].*mean 0.5 and std 0.5"):
        palette.encode(images() * 3)
    with pytest.raises(ValueError, match="channel"):
        palette.encode(torch.zeros(1, 1, 4, 4))
    wrong = tmp_path / "kmeans_centers.npy"
    np.save(wrong, np.zeros((5, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"kmeans_centers.npy.*shape \(4, 3\)"):
        PaletteTokenizer(4, 3, centres_file=str(wrong))
    with pytest.raises(ValueError, match="distinct pixel values"):
        PaletteTokenizer(4, 3).fit([torch.zeros(1, 3, 4, 4)])
    right = tmp_path / "palette.npy"
    np.save(right, fitted_palette(4).centres.numpy())
    assert torch.equal(PaletteTokenizer(4, 3, centres_file=str(right)).centres, fitted_palette(4).centres)


def transformers_twin(model: IGPT):
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

    config = ImageGPTConfig(vocab_size=COLOURS + 1, n_positions=GRID * GRID + 1, n_embd=32, n_layer=2, n_head=4,
                            activation_function="quick_gelu", layer_norm_epsilon=1e-5, resid_pdrop=0.0,
                            embd_pdrop=0.0, attn_pdrop=0.0)
    twin = ImageGPTForCausalImageModeling(config).eval()
    state = to_transformers(model)
    # one position more than ours, so transformers' own (shifted) loss covers every pixel: the extra
    # last position feeds only its own output, which predicts nothing
    state["transformer.wpe.weight"] = torch.cat([state["transformer.wpe.weight"], torch.zeros(1, 32)])
    missing, unexpected = twin.load_state_dict(state, strict=False)
    assert not unexpected and all(key.endswith((".attn.bias", ".attn.masked_bias")) for key in missing), missing
    return twin


def test_logits_and_loss_match_transformers_imagegpt_on_copied_weights():
    model, x = tiny_igpt(), images()
    twin = transformers_twin(model)
    ids = model.patchifier.tokenizer.encode(x).flatten(1)
    # transformers reads [sos] + pixels; its i-th output predicts pixel i (its loss shifts the labels)
    sequence = torch.cat([torch.full((len(ids), 1), COLOURS), ids], dim=1)
    with torch.no_grad():
        theirs = twin(input_ids=sequence, labels=sequence)
        ours = model.logits(model.tokenize({"inputs": x}))
        loss = model({"inputs": x})["loss"]
    assert torch.allclose(ours, theirs.logits[:, :-1], atol=1e-5)
    assert torch.allclose(loss, theirs.loss, atol=1e-6)
    # and back: transformers' weights in our names rebuild the same model
    rebuilt = tiny_igpt(seed=5)
    theirs_state = twin.state_dict()
    theirs_state["transformer.wpe.weight"] = theirs_state["transformer.wpe.weight"][:-1]
    rebuilt.load_state_dict({**rebuilt.state_dict(), **from_transformers(theirs_state, depth=2)})
    with torch.no_grad():
        assert torch.allclose(rebuilt.logits(rebuilt.tokenize({"inputs": x})), ours, atol=1e-6)


def test_from_transformers_refuses_a_non_zero_bias():
    twin = transformers_twin(tiny_igpt())
    state = twin.state_dict()
    state["transformer.h.0.mlp.c_fc.bias"] = state["transformer.h.0.mlp.c_fc.bias"] + 1
    with pytest.raises(ValueError, match="c_fc.bias"):
        from_transformers(state, depth=2)


def test_autoregressive_output_i_sees_only_earlier_pixels():
    model, x = tiny_igpt(), images(2)
    tokens = model.tokenize({"inputs": x})
    changed = tokens.values.clone()
    j = 7
    changed[:, j] = (changed[:, j] + 1) % COLOURS
    with torch.no_grad():
        before, after = model.logits(tokens), model.logits(PalettePixels.tokens_of(changed.view(2, GRID, GRID), 3))
    assert torch.equal(before[:, : j + 1], after[:, : j + 1])  # outputs up to j predict pixels ≤ j from pixels < j
    assert not torch.allclose(before[:, j + 1:], after[:, j + 1:])
    # so the first j + 1 pixels alone give the same first j + 1 outputs (what sampling relies on)
    prefix = type(tokens)(values=tokens.values[:, : j + 1], coords=tokens.coords[:, : j + 1], meta=tokens.meta)
    with torch.no_grad():
        assert torch.allclose(model.logits(prefix), before[:, : j + 1], atol=1e-5)


def test_bert_hides_pixels_by_zeroing_and_averages_per_image_then_batch():
    model, x = tiny_igpt("bert"), images(4)
    tokens = model.tokenize({"inputs": x})
    masked = torch.zeros(4, GRID * GRID, dtype=torch.bool)
    masked[0, :2], masked[1, 3:9], masked[2, 5], masked[3, [0, 15]] = True, True, True, True
    mask = Mask.from_masked(masked)
    hidden_changed = tokens.values.clone()
    hidden_changed[masked] = (hidden_changed[masked] + 3) % COLOURS
    with torch.no_grad():
        latents = model.encoder(model.encoder_input(None, tokens, mask))
        other = model.encoder(model.encoder_input(None, PalettePixels.tokens_of(hidden_changed.view(4, GRID, GRID), 3), mask))
        assert torch.equal(latents, other)  # a hidden pixel's colour reaches nothing
        logits = model.decoder(latents, mask, tokens)
        losses = model.loss(logits, model.target(tokens, None), mask)
    per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.values.flatten(), reduction="none").view(4, -1)
    expected = torch.stack([per_token[i][masked[i]].mean() for i in range(4)]).mean()
    assert torch.allclose(losses["loss"], expected, atol=1e-6)


def test_bert_hides_each_pixel_with_probability_015():
    model = tiny_igpt("bert")
    tokens = model.tokenize({"inputs": images(200, seed=3)})
    mask = model.make_mask(tokens)
    rate = float(mask.masked.float().mean())
    assert abs(rate - 0.15) < 4 * (0.15 * 0.85 / mask.masked.numel()) ** 0.5  # 4 standard errors
    assert mask.variable_count


def test_completion_keeps_the_given_half_and_samples_palette_ids():
    model, x = tiny_igpt(), images(2)
    ids = model.patchifier.tokenizer.encode(x)
    given = GRID * GRID // 2
    done = model.complete(ids, given, torch.Generator().manual_seed(0))
    assert torch.equal(done.flatten(1)[:, :given], ids.flatten(1)[:, :given])
    assert done.min() >= 0 and done.max() < COLOURS
    again = model.complete(ids, given, torch.Generator().manual_seed(0))
    assert torch.equal(done, again)
    rows = model.panels(x, mean=(0.5,) * 3, std=(0.5,) * 3, completions=2)
    assert len(rows) == 2 and len(rows[0]) == 4 and rows[0][0].shape == (GRID, GRID, 3)
    with pytest.raises(ValueError, match="BERT"):
        tiny_igpt("bert").complete(ids, given)
    with pytest.raises(ValueError, match="given must be"):
        model.complete(ids, GRID * GRID + 1)
    # BERT's picture: hidden pixels grey | arg-max predictions filled in | the image in palette colours
    rows = tiny_igpt("bert").panels(images(2), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert len(rows) == 2 and len(rows[0]) == 3 and rows[0][1].shape == (GRID, GRID, 3)


def test_probe_layer_reads_the_layer_normed_middle_block():
    model, x = tiny_igpt(), images(2)
    tokens = model.tokenize({"inputs": x})
    with torch.no_grad():
        middle = model.encoder.forward_intermediates(tokens, [1]).features[1]
        found = model.encode_layer({"inputs": x}, 1)
    assert torch.allclose(found, torch.nn.functional.layer_norm(middle, (32,)), atol=1e-6)
    with pytest.raises(ValueError, match="probe layer 5"):
        model.encode_layer({"inputs": x}, 5)


def test_palette_ids_are_the_same_under_bf16_autocast():
    palette = fitted_palette(512, seed=2)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = palette.encode(x)
    assert torch.equal(under_autocast, palette.encode(x))


@pytest.mark.parametrize("objective", ["autoregressive", "bert"])
def test_every_trainable_parameter_gets_a_gradient(objective):
    # DDP (find_unused_parameters=False) refuses a parameter that one backward pass leaves without one
    model = tiny_igpt(objective).train()
    model({"inputs": images(4)})["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing
    assert (model.encoder.sos is None) == (objective == "bert")
