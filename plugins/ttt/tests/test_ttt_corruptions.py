"""The corruptions against their definitions (make_imagenet_c.py / make_cifar_c.py), checked by
statistics or by an independent computation (colorsys, scikit-image, Pillow), never by calling the
same code twice."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from maekit_ttt import corruptions as C


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def photo(size: int = 32, channels: int = 3) -> np.ndarray:
    """A smooth colour image in (0.2, 0.8): no clipping in the statistics below."""
    ys, xs = np.mgrid[0:size, 0:size] / size
    planes = [0.5 + 0.3 * np.sin(2 * np.pi * (xs + k * ys) + k) for k in range(channels)]
    return np.stack(planes, axis=-1)


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_corruption_keeps_shape_and_range_is_seeded_and_changes_the_image(name, channels):
    image = torch.from_numpy(photo(24, channels)).permute(2, 0, 1).float()
    mild, severe = (C.corrupt(image, name, s, seed=3) for s in (1, 5))
    assert severe.shape == image.shape and severe.dtype == image.dtype
    assert float(severe.min()) >= 0 and float(severe.max()) <= 1
    assert torch.equal(severe, C.corrupt(image, name, 5, seed=3))  # the seed fixes every draw
    assert torch.equal(severe * 255, torch.floor(severe * 255 + 1e-4))  # 8-bit levels, as the saved reference files
    assert (severe - image).abs().mean() > 1e-3
    if name not in ("saturate",):  # CIFAR's saturate is not monotone in severity (×0.3, ×0.1, ×1.5, ...)
        assert (severe - image).abs().mean() >= (mild - image).abs().mean() - 1e-3


def test_noise_corruptions_have_the_papers_statistics():
    x = np.full((200, 200, 3), 0.5)
    c = C.CONSTANTS["gaussian_noise"][0][0]
    assert abs(np.std(C.gaussian_noise(x, c, rng()) - x) - c) < 0.002
    c = C.CONSTANTS["shot_noise"][1][2]  # Poisson(x·c)/c: mean x, variance x/c
    shot = C.shot_noise(x, c, rng())
    assert abs(shot.mean() - 0.5) < 0.002 and abs(shot.var() - 0.5 / c) < 0.0005
    c = C.CONSTANTS["impulse_noise"][0][4]
    impulse = C.impulse_noise(x, c, rng())
    salt, pepper = (impulse == 1).mean(), (impulse == 0).mean()
    assert abs(salt + pepper - c) < 0.005 and abs(salt - pepper) < 0.005
    assert np.all((impulse == 0.5) | (impulse == 0) | (impulse == 1))
    c = C.CONSTANTS["speckle_noise"][0][1]  # x + x·N(0, c): deviation c·x
    assert abs(np.std(C.speckle_noise(x, c, rng()) - x) - 0.5 * c) < 0.002


def test_contrast_brightness_saturate_follow_their_formulas():
    x = photo()
    c = C.CONSTANTS["contrast"][0][2]
    mean = x.reshape(-1, 3).mean(0)
    assert np.allclose(C.contrast(x, c, rng()), (x - mean) * c + mean)
    # brightness / saturate: HSV value + c / saturation × a + b, checked with the standard library's colorsys
    for name, change in (("brightness", lambda h, s, v, c: (h, s, min(v + c, 1))),
                         ("saturate", lambda h, s, v, c: (h, min(max(s * c[0] + c[1], 0), 1), v))):
        c = C.CONSTANTS[name][0][3]
        out = C.CORRUPTIONS[name](x, c, rng())
        for i, j in [(0, 0), (5, 17), (31, 2)]:
            expected = colorsys.hsv_to_rgb(*change(*colorsys.rgb_to_hsv(*x[i, j]), c))
            assert np.allclose(out[i, j], expected, atol=1e-6), (name, i, j)


def test_blurs_match_independent_filters():
    from skimage.filters import gaussian

    x = photo()
    assert np.allclose(C.gaussian_blur(x, 2.0, rng()), np.clip(gaussian(x, sigma=2.0, channel_axis=-1), 0, 1), atol=1e-6)
    # defocus: a normalised disk of the radius, softened; a tiny radius is nearly the identity
    kernel = C.disk_kernel(3, 0.1)
    assert abs(kernel.sum() - 1) < 1e-6 and kernel.shape == (17, 17)
    ys, xs = np.mgrid[-8:9, -8:9]
    assert kernel[(ys ** 2 + xs ** 2) > 16].max() < 1e-6 and kernel[(ys ** 2 + xs ** 2) <= 9].min() > 0
    assert C.disk_kernel(0.3, 0.4)[8, 8] > 0.5
    # past radius 8 the disk fills its grid, and OpenCV's reflect-101 edges add weight back: the
    # reference's kernel sums to a little over 1 (ImageNet-C's defocus 5 brightens by about 1%)
    wide = C.disk_kernel(10, 0.5)
    assert wide.shape == (21, 21) and 1.005 < wide.sum() < 1.02
    flat = np.full((16, 16, 3), 0.4)
    for name in ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"):  # every blur averages: a flat image stays flat
        for table in (0, 1):
            constant = C.CONSTANTS[name][table][3]
            gain = C.disk_kernel(*constant).sum() if name == "defocus_blur" else 1.0  # see the wide disk above
            assert np.allclose(C.CORRUPTIONS[name](flat, constant, rng()), flat * gain, atol=1e-6), name


def test_motion_kernel_is_imagemagicks_one_sided_trail():
    taps = C.motion_kernel(3, 2.0, 0.0)
    assert len(taps) == 7 and [(dy, dx) for dy, dx, _ in taps] == [(0, i) for i in range(7)]
    weights = np.array([w for _, _, w in taps])
    assert abs(weights.sum() - 1) < 1e-9 and np.allclose(weights / weights[0], np.exp(-np.arange(7) ** 2 / 8))
    assert [(dy, dx) for dy, dx, _ in C.motion_kernel(2, 1.0, 90.0)] == [(i, 0) for i in range(5)]
    # a point in the middle is smeared into at most 2r + 1 pixels, its energy kept
    point = np.zeros((21, 21, 1))
    point[10, 10] = 1.0
    smeared = C.motion_blur(point, (3, 2.0), rng())
    assert abs(smeared.sum() - 1) < 1e-9 and 1 < (smeared > 0).sum() <= 7


def test_zoom_pixelate_jpeg_fog():
    x = photo()
    assert np.allclose(C.clipped_zoom(x, 1.0), x)
    zoomed = C.clipped_zoom(x, 2.0)
    assert zoomed.shape == x.shape and np.allclose(zoomed[15:17, 15:17], x[15:17, 15:17], atol=0.05)
    # pixelate at 0.5 on 32 px: 2×2 blocks, each its block's mean (BOX down, BOX up), in 8-bit levels
    out = C.pixelate(x, 0.5, rng())
    blocks = np.floor(x * 255).reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    assert np.allclose(out, np.repeat(np.repeat(np.round(blocks) / 255, 2, 0), 2, 1), atol=1.01 / 255)
    # JPEG at the severity's quality: the error grows as the quality falls
    errors = [np.abs(C.jpeg_compression(x, q, rng()) - x).mean() for q in (80, 40, 7)]
    assert errors[0] < errors[1] < errors[2]
    plasma = C.plasma_fractal(32, 2.0, rng())
    assert plasma.shape == (32, 32) and plasma.min() == 0 and plasma.max() == 1
    fogged = C.fog(x, (1.5, 2.0), rng())  # x + c·plasma, rescaled by max/(max + c): never brighter than the peak
    assert fogged.max() <= x.max() + 1e-9 and not np.allclose(fogged, x)
    with pytest.raises(ValueError, match="power of two"):
        C.plasma_fractal(24, 2.0, rng())


def test_corrupt_picks_cifars_constants_for_small_images_and_rejects_bad_input():
    small = torch.full((3, 32, 32), 0.5)
    large = torch.full((3, 96, 96), 0.5)
    for image, c in ((small, C.CONSTANTS["gaussian_noise"][1][1]), (large, C.CONSTANTS["gaussian_noise"][0][1])):
        noise = C.corrupt(image, "gaussian_noise", 2, quantise=False) - image  # 0.06 vs 0.12: unclipped around 0.5
        assert abs(float(noise.std()) - c) < 0.02 * c + 0.01
    with pytest.raises(ValueError, match="unknown corruption 'fgo'"):
        C.corrupt(small, "fgo", 1)
    with pytest.raises(ValueError, match="severity must be 1–5, got 6"):
        C.corrupt(small, "fog", 6)
    with pytest.raises(ValueError, match="1 or 3 channels, got shape \\(2, 32, 32\\)"):
        C.corrupt(torch.zeros(2, 32, 32), "fog", 1)
