"""Stain separation against independent computations: images made from known stain vectors and
concentrations, scikit-image's rgb2hed, and the truncated standardisation done by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maekit_pathology.stains import (
    RGB_FROM_HED,
    NoTissueError,
    StainSeparation,
    ruifrok_concentrations,
    truncated_standardise,
    vahadane_separation,
)


def beer_lambert(concentrations: np.ndarray, stains: np.ndarray) -> np.ndarray:
    """H×W×3 intensities in (0, 1] of a tissue with these concentrations (H×W×K) of these stains (K×3)."""
    return np.exp(-(concentrations @ stains))


def test_ruifrok_recovers_known_concentrations_of_a_synthetic_image():
    rng = np.random.default_rng(0)
    concentrations = rng.uniform(0, 1.5, size=(16, 20, 3))
    image = torch.from_numpy(beer_lambert(concentrations, RGB_FROM_HED)).permute(2, 0, 1)
    recovered = ruifrok_concentrations(image, eps=1e-12).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(recovered, concentrations, atol=1e-9)
    # batched (B×3×H×W) gives the same per image
    batch = torch.stack([image, image.flip(-1)])
    np.testing.assert_allclose(ruifrok_concentrations(batch, eps=1e-12)[1].numpy(),
                               ruifrok_concentrations(image.flip(-1), eps=1e-12).numpy())


def test_ruifrok_matches_scikit_image_rgb2hed_up_to_its_od_scale():
    import skimage.data
    from skimage.color import rgb2hed

    slide = skimage.data.immunohistochemistry()[:96, :128]
    ours = ruifrok_concentrations(torch.from_numpy(slide / 255.0).permute(2, 0, 1), eps=1e-6).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours / np.log(1e6), rgb2hed(slide), atol=1e-12)


def test_vahadane_learns_the_stain_vectors_and_concentrations_of_a_synthetic_slide():
    # two stains unlike Ruifrok's defaults (the learner starts from those), sparse concentrations,
    # a fifth of the pixels background (so the 90th-percentile brightness is already white)
    stains = np.array([[0.55, 0.78, 0.30], [0.15, 0.90, 0.40]])
    stains /= np.linalg.norm(stains, axis=1, keepdims=True)
    rng = np.random.default_rng(1)
    concentrations = rng.gamma(2.0, 0.4, size=(64, 64, 2)) * (rng.random((64, 64, 2)) < 0.6)
    concentrations[:, :13] = 0
    learnt, recovered = vahadane_separation(beer_lambert(concentrations, stains))
    assert learnt.shape == (2, 3) and recovered.shape == (64, 64, 2)
    np.testing.assert_allclose(np.linalg.norm(learnt, axis=1), 1.0, atol=1e-9)
    # the OD of every pixel lies in the plane of the two stains; the L1 sparsity (lambda 0.01, the
    # reference's) is what picks the plane's true edges, to within a few degrees
    cosines = (learnt * stains).sum(1)
    assert cosines.min() > 0.99, (learnt, stains)  # H first (larger red OD), then E
    start = RGB_FROM_HED[1] / np.linalg.norm(RGB_FROM_HED[1])  # where the learner starts for E
    assert cosines[1] > (start * stains[1]).sum() + 0.04  # learnt, not the starting vector
    for stain in range(2):  # each recovered concentration map follows the true one
        assert np.corrcoef(recovered[..., stain].ravel(), concentrations[..., stain].ravel())[0, 1] > 0.97


def test_vahadane_refuses_an_image_without_tissue_and_the_transform_falls_back_to_ruifrok():
    with pytest.raises(NoTissueError, match="no tissue pixels"):
        vahadane_separation(np.full((16, 16, 3), 250, dtype=np.uint8))
    blank = torch.full((3, 16, 16), 250 / 255)
    separation = StainSeparation("vahadane")
    torch.testing.assert_close(separation.stains(blank), StainSeparation("ruifrok").stains(blank))
    assert separation.ruifrok_fallbacks == 1
    with pytest.raises(NoTissueError):
        StainSeparation("vahadane", no_tissue="raise").stains(blank)
    with pytest.raises(ValueError, match="H×W×3"):
        vahadane_separation(np.zeros((16, 16), dtype=np.uint8))


def test_truncated_standardisation_uses_the_middle_80_percent_of_sorted_values():
    rng = np.random.default_rng(2)
    images = rng.random((2, 10, 10))
    images[0, 0, :5] = 50.0  # outliers in the top tail must not move the statistics
    result = truncated_standardise(torch.from_numpy(images)).numpy()
    for image, standardised in zip(images, result):
        middle = np.sort(image.ravel())[10:90]
        np.testing.assert_allclose(standardised, (image - middle.mean()) / middle.std(ddof=1), rtol=1e-10)
    flat = truncated_standardise(torch.full((1, 4, 4), 0.7))
    torch.testing.assert_close(flat, torch.zeros(1, 4, 4), atol=1e-4, rtol=0)  # a stain-free image: zeros, not noise


def test_stain_separation_transform_appends_standardised_h_and_e():
    import skimage.data

    slide = torch.from_numpy(skimage.data.immunohistochemistry()[:64, :64] / 255.0).permute(2, 0, 1).float()
    separated = StainSeparation("ruifrok")(slide)
    assert separated.shape == (5, 64, 64)
    assert torch.equal(separated[:3], slide)
    expected = truncated_standardise(torch.exp(-ruifrok_concentrations(slide)[:2]))
    torch.testing.assert_close(separated[3:], expected)
    with pytest.raises(ValueError, match="method must be one of"):
        StainSeparation("macenko")
    with pytest.raises(ValueError, match="RGB images"):
        StainSeparation()(torch.rand(1, 8, 8))
