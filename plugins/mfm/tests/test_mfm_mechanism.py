"""MFM's mechanism pinned against values computed independently here (numpy, loops)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maekit.registry import build
from maekit.structures import Tokens
from maekit_mfm.corruption import (
    Corruption,
    DownUpSampleCorruption,
    FrequencyMasker,
    GaussianBlurCorruption,
    GaussianNoiseCorruption,
    frequency_filter,
    radius_mask,
)
from maekit_mfm.loss import FrequencyLoss


def reference_mask(height: int, width: int, r1: float, r2: float) -> np.ndarray:
    """The reference's double loop, with the centre at (H//2, W//2)."""
    mask = np.ones((height, width))
    for y in range(height):
        for x in range(width):
            d2 = (x - width // 2) ** 2 + (y - height // 2) ** 2
            if r1 ** 2 <= d2 < r2 ** 2:
                mask[y, x] = 0
    return mask


def reference_filter(images: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """fft2 → fftshift → mask → ifftshift → ifft2 → real → clamp, in numpy."""
    spectrum = np.fft.fftshift(np.fft.fft2(images), axes=(-2, -1)) * kept
    return np.clip(np.fft.ifft2(np.fft.ifftshift(spectrum, axes=(-2, -1))).real, 0, 1)


def image_tokens(images: torch.Tensor, patch: int = 4) -> Tokens:
    return build("patchifier", dict(type="image_patches", patch_size=patch, in_chans=images.shape[1]))(images)


@pytest.mark.parametrize("size", [(8, 8), (9, 9), (8, 9), (32, 32), (15, 12)])
@pytest.mark.parametrize("radii", [(2, 999), (1, 3), (3, 4.5)])
def test_radius_mask_geometry_matches_the_reference_loop_at_even_and_odd_sizes(size, radii):
    expected = reference_mask(*size, *radii)
    np.testing.assert_array_equal(radius_mask(size, *radii).numpy(), expected)
    # the zero frequency sits where fftshift puts it, and the base mask keeps it
    dc = np.zeros(size)
    dc[0, 0] = 1
    centre = np.unravel_index(np.fft.fftshift(dc).argmax(), size)
    assert centre == (size[0] // 2, size[1] // 2)
    if radii[0] > 0:
        assert expected[centre] == 1


def test_frequency_filter_matches_the_reference_order_of_operations():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 2, 12, 11, generator=generator, dtype=torch.float64)
    kept = torch.from_numpy(np.stack([reference_mask(12, 11, 3, 999), 1 - reference_mask(12, 11, 3, 999),
                                      reference_mask(12, 11, 2, 4)]))
    ours = frequency_filter(images, kept).double()
    expected = reference_filter(images.numpy(), kept.numpy()[:, None])
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)


def test_a_pure_low_pass_image_passes_the_low_pass_mask_unchanged():
    size, r1 = 32, 5
    base = radius_mask((size, size), r1, 999)
    # an image built from frequencies strictly inside the kept disk (Hermitian, so it is real)
    generator = torch.Generator().manual_seed(1)
    spectrum = torch.randn(size, size, generator=generator, dtype=torch.float64) * (base.double() > 0)
    image = torch.fft.ifft2(torch.fft.ifftshift(spectrum)).real
    image = 0.5 + 0.3 * image / image.abs().max()  # inside (0, 1): the clamp does nothing
    image = image.float().expand(1, 3, size, size)
    masker = FrequencyMasker(radius_inner=r1, sample_ratio=1.0)  # always low-pass
    corruption = masker(image_tokens(image), noise=torch.rand(1, 1))
    torch.testing.assert_close(masker.corrupt(image, corruption), image, atol=1e-5, rtol=0)
    # and the complementary high-pass removes all of it (what is left is clamped at 0)
    high_pass = _with(corruption, 1 - corruption.kept_frequencies)
    assert masker.corrupt(image, high_pass).max() < 0.2


def _with(corruption: Corruption, kept: torch.Tensor) -> Corruption:
    from dataclasses import replace

    return replace(corruption, kept_frequencies=kept)


def test_low_or_high_pass_is_chosen_per_sample_with_probability_sample_ratio():
    masker = FrequencyMasker(radius_inner=4, sample_ratio=0.3)
    tokens = image_tokens(torch.zeros(2000, 1, 16, 16))
    uniform = torch.rand(2000, 1, generator=torch.Generator().manual_seed(0))
    kept = masker(tokens, noise=uniform).kept_frequencies
    base = radius_mask((16, 16), 4, 999)
    low = (kept == base).all(dim=(1, 2))
    high = (kept == 1 - base).all(dim=(1, 2))
    assert bool((low ^ high).all())  # every sample is one or the other
    assert torch.equal(low, uniform[:, 0] < 0.3)  # Bernoulli(sample_ratio) picks low-pass, as the reference
    assert abs(low.float().mean().item() - 0.3) < 0.04
    # one map per sample, applied to every channel alike
    image = torch.rand(2, 3, 16, 16)
    corruption = masker(image_tokens(image), noise=torch.tensor([[0.1], [0.9]]))
    filtered = masker.corrupt(image, corruption)
    single = masker.corrupt(image[:, 1:2], corruption)
    torch.testing.assert_close(filtered[:, 1:2], single)


def test_a_trainer_noise_callable_decides_the_corruption_deterministically():
    masker = FrequencyMasker(radius_inner=3)
    tokens = image_tokens(torch.zeros(6, 1, 16, 16))
    asked = []

    def noise(shape, device):
        asked.append(shape)
        return torch.linspace(0, 1, shape[0]).view(-1, 1)

    first, second = masker(tokens, noise=noise), masker(tokens, noise=noise)
    assert asked == [(6, 1), (6, 1)]
    assert torch.equal(first.kept_frequencies, second.kept_frequencies)
    assert first.masked.sum() == 0 and first.num_visible == tokens.num_tokens  # no token dropped


def reference_masked_loss(pred: np.ndarray, target: np.ndarray, kept: np.ndarray) -> float:
    """The reference: ortho fft2, fftshift, |Δ| per frequency, mean over removed frequencies / C."""
    fp = np.fft.fftshift(np.fft.fft2(pred, norm="ortho"), axes=(-2, -1))
    ft = np.fft.fftshift(np.fft.fft2(target, norm="ortho"), axes=(-2, -1))
    distance = np.sqrt((fp.real - ft.real) ** 2 + (fp.imag - ft.imag) ** 2 + 1e-12)
    removed = 1 - kept[:, None]
    return float((distance * removed).sum() / removed.sum() / pred.shape[1])


def test_frequency_loss_value_and_reduction_match_the_reference_formula():
    generator = torch.Generator().manual_seed(2)
    pred, target = torch.randn(3, 2, 16, 16, generator=generator), torch.randn(3, 2, 16, 16, generator=generator)
    kept = torch.from_numpy(np.stack([reference_mask(16, 16, 4, 999), 1 - reference_mask(16, 16, 4, 999),
                                      reference_mask(16, 16, 4, 999)])).float()
    corruption = Corruption.keep_all(3, 16)
    loss = FrequencyLoss()(pred, target, _with(corruption, kept))["loss"]
    expected = reference_masked_loss(pred.double().numpy(), target.double().numpy(), kept.double().numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    normal = FrequencyLoss(recover="normal")(pred, target, corruption)["loss"]
    fp, ft = (np.fft.fft2(x.double().numpy(), norm="ortho") for x in (pred, target))
    assert normal.item() == pytest.approx(float(np.abs(fp - ft).mean()), rel=1e-5)


def test_frequency_loss_is_zero_at_the_target_and_ignores_kept_frequencies():
    target = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    base = radius_mask((16, 16), 4, 999)
    corruption = _with(Corruption.keep_all(2, 16), torch.stack([base, 1 - base]))
    loss = FrequencyLoss()
    assert loss(target, target, corruption)["loss"].item() == pytest.approx(1e-6, abs=1e-9)  # sqrt(1e-12)
    # an error made only of frequencies each sample KEPT costs nothing
    spectrum = torch.fft.fftshift(torch.fft.fft2(torch.randn(2, 3, 16, 16, dtype=torch.float64)), dim=(-2, -1))
    kept_only = torch.fft.ifft2(torch.fft.ifftshift(spectrum * corruption.kept_frequencies[:, None], dim=(-2, -1))).real
    assert loss(target + kept_only.float(), target, corruption)["loss"].item() == pytest.approx(1e-6, abs=1e-5)
    removed_only = torch.fft.ifft2(torch.fft.ifftshift(
        spectrum * (1 - corruption.kept_frequencies[:, None]), dim=(-2, -1))).real
    assert loss(target + removed_only.float(), target, corruption)["loss"].item() > 0.1


def test_focal_weight_matrix_is_detached_and_scaled_per_spectrum():
    pred = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randn(2, 3, 8, 8)
    focal = FrequencyLoss(recover="normal", with_matrix=True)
    squared = (torch.fft.fft2(pred.detach(), norm="ortho") - torch.fft.fft2(target, norm="ortho")).abs() ** 2
    weight = focal.focal_weight(torch.fft.fftshift(squared, dim=(-2, -1)).unsqueeze(1))
    assert weight.min() >= 0 and torch.allclose(weight.amax(dim=(-2, -1)), torch.ones(2, 1, 3))
    focal(pred, target, Corruption.keep_all(2, 4))["loss"].backward()
    # the gradient is that of a constant weight times the plain distance (the weight is detached)
    expected = pred.detach().clone().requires_grad_(True)
    distance = FrequencyLoss(recover="normal").distance(expected, target)
    (weight * distance).mean().backward()
    torch.testing.assert_close(pred.grad, expected.grad, atol=1e-6, rtol=1e-4)


def test_model_corrupts_the_image_in_pixel_space_as_the_reference():
    """De-normalise → corrupt in [0, 1] → normalise equals the reference's corrupt-then-normalise."""
    model = build("model", dict(type="mfm", encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                                in_chans=3, encoder=dict(embed_dim=32, depth=1, num_heads=2), radius_inner=3))
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    images = (pixels - mean) / std
    tokens = model.tokenize(images)
    corruption = model.make_mask(tokens, torch.tensor([[0.2], [0.8]]))
    expected = (torch.from_numpy(reference_filter(pixels.double().numpy(),
                                                  corruption.kept_frequencies.double().numpy()[:, None])).float() - mean) / std
    torch.testing.assert_close(model.corrupt_input(images, corruption), expected, atol=1e-4, rtol=0)
    # the encoder sees every token of the corrupted image (+ its class token), no mask token
    assert model.encoder(model.encoder_input(images, tokens, corruption)).shape[1] == tokens.num_tokens + 1


def test_super_resolution_sibling_is_bicubic_down_and_up():
    images = torch.rand(2, 3, 32, 32)
    corruption = DownUpSampleCorruption(factor=4)
    small = F.interpolate(images, size=(8, 8), mode="bicubic").clamp(0, 1)
    expected = F.interpolate(small, size=(32, 32), mode="bicubic").clamp(0, 1)
    torch.testing.assert_close(corruption.corrupt(images, Corruption.keep_all(2, 4)), expected)


def test_blur_sibling_applies_each_samples_gaussian_kernel():
    blur = GaussianBlurCorruption(sigma=(1.0, 3.0), kernel_sizes=(5, 9))
    delta = torch.zeros(2, 1, 21, 21)
    delta[:, :, 10, 10] = 1.0
    corruption = blur(image_tokens(delta, patch=1), noise=torch.tensor([[0.1], [0.8]]))
    sigma, sizes = corruption.strength[:, 0], corruption.strength[:, 1]
    assert sizes.tolist() == [5.0, 9.0] and sigma.tolist() == pytest.approx([1.4, 2.2])
    response = blur.corrupt(delta, corruption)
    for sample, (s, k) in enumerate(zip(sigma.tolist(), sizes.tolist())):
        r = int(k) // 2
        axis = np.arange(-r, r + 1)
        kernel = np.exp(-(axis[:, None] ** 2 + axis[None] ** 2) / (2 * s ** 2))
        expected = np.zeros((21, 21))
        expected[10 - r:11 + r, 10 - r:11 + r] = kernel / kernel.sum()
        np.testing.assert_allclose(response[sample, 0].numpy(), expected, atol=1e-6)


def test_noise_sibling_adds_gaussian_noise_of_sigma_in_255_units():
    noise = GaussianNoiseCorruption(sigma=(25.5, 25.5))
    images = torch.full((1, 1, 256, 256), 0.5)
    corruption = noise(image_tokens(images, patch=16))
    noisy = noise.corrupt(images, corruption)
    assert (noisy - images).std().item() == pytest.approx(0.1, rel=0.05)
    # not clipped, as the reference's Gaussian noise: the paper's sigma 75 leaves [0, 1]
    strong = GaussianNoiseCorruption()
    assert strong.corrupt(images, strong(image_tokens(images, patch=16))).max() > 1.5


def test_configuration_errors_name_the_setting():
    with pytest.raises(ValueError, match="radius_inner .* below half the image size"):
        FrequencyMasker(radius_inner=9)(image_tokens(torch.zeros(1, 1, 16, 16)))
    with pytest.raises(ValueError, match="radius_inner < radius_outer"):
        FrequencyMasker(radius_inner=5, radius_outer=4)
    with pytest.raises(ValueError, match="sample_ratio"):
        FrequencyMasker(sample_ratio=1.5)
    with pytest.raises(ValueError, match="needs a frequency mask"):
        FrequencyLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), Corruption.keep_all(1, 1))
    with pytest.raises(ValueError, match="patch_factor=1"):
        FrequencyLoss(patch_factor=2)
    with pytest.raises(ValueError, match="corruption must be one of"):
        build("model", dict(type="mfm", corruption="inpainting"))
    with pytest.raises(ValueError, match="not a timm model"):
        build("model", dict(type="mfm", encoder_name="no_such_net"))
    with pytest.raises(ValueError, match="multiple of the encoder stride 32"):
        build("model", dict(type="mfm", encoder_name="resnet18", img_size=48, in_chans=1))
    with pytest.raises(ValueError, match="recover='masked' averages over removed frequencies"):
        build("model", dict(type="mfm", encoder_name="resnet18", img_size=32, corruption="deblur", recover="masked"))
    with pytest.raises(ValueError, match=r"give \['in_chans'\] as mfm's own arguments"):
        build("model", dict(type="mfm", encoder_name="resnet18", img_size=32, encoder=dict(in_chans=1)))
    with pytest.raises(ValueError, match="patch_size applies to ViT encoders"):
        build("model", dict(type="mfm", encoder_name="resnet18", img_size=32, patch_size=4))
    with pytest.raises(ValueError, match="mean/std need 1 values"):
        build("model", dict(type="mfm", encoder_name="resnet18", img_size=32, in_chans=1, mean=(0.5, 0.5, 0.5)))


def test_pasting_frequencies_takes_kept_ones_from_the_source_and_removed_ones_from_the_prediction():
    from maekit_mfm.corruption import paste_frequencies

    source, prediction = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 12)
    kept = torch.stack([radius_mask((12, 12), 3, 999), 1 - radius_mask((12, 12), 3, 999)])
    torch.testing.assert_close(paste_frequencies(source, prediction, torch.ones(2, 12, 12)), source, atol=1e-5, rtol=0)
    torch.testing.assert_close(paste_frequencies(source, prediction, torch.zeros(2, 12, 12)), prediction, atol=1e-5, rtol=0)
    pasted = paste_frequencies(source, prediction, kept)
    spectrum = lambda x: torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))  # noqa: E731
    k = kept.unsqueeze(1)
    torch.testing.assert_close(spectrum(pasted) * k, spectrum(source) * k, atol=1e-4, rtol=0)
    torch.testing.assert_close(spectrum(pasted) * (1 - k), spectrum(prediction) * (1 - k), atol=1e-4, rtol=0)


def test_inputs_normalised_with_other_statistics_than_the_models_are_refused():
    model = build("model", dict(type="mfm", encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                                in_chans=1, encoder=dict(embed_dim=32, depth=1, num_heads=2), radius_inner=3))
    wrong = (torch.rand(2, 1, 16, 16) - 0.1307) / 0.3081  # MNIST statistics; the model assumes 0.5 / 0.5
    with pytest.raises(ValueError, match=r"de-normalised inputs span .*set model.mean/model.std"):
        model({"inputs": wrong})


def test_channels_last_hierarchical_encoders_work():
    """Swin returns NHWC feature maps; they are laid out as row-major tokens like a CNN's."""
    model = build("model", dict(type="mfm", encoder_name="swin_tiny_patch4_window7_224", img_size=64, radius_inner=4,
                                encoder=dict(img_size=64, embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
                                             window_size=4)))
    assert model.encoder.stride == 32 and model.encoder.num_prefix_tokens == 0
    images = (torch.rand(2, 3, 64, 64) - model.pixel_mean) / model.pixel_std
    features = model.encode({"inputs": images})
    reference = model.encoder.network.forward_features(images)  # B×2×2×D, channels last
    torch.testing.assert_close(features, reference.reshape(2, 4, -1))
    assert torch.isfinite(model({"inputs": images})["loss"])
