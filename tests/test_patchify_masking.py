import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maekit.nn.masking import BlockMasker, GivenMasker, RandomMasker
from maekit.nn.patchify import ImagePatchifier, patchify, unpatchify
from maekit.structures import Mask, Tokens


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), channels=st.integers(1, 5), p=st.integers(1, 5), q=st.integers(1, 5),
       h=st.integers(1, 4), w=st.integers(1, 4))
def test_unpatchify_inverts_patchify(batch, channels, p, q, h, w):
    images = torch.randn(batch, channels, h * p, w * q)
    values = patchify(images, (p, q))
    assert values.shape == (batch, h * w, p * q * channels)
    assert torch.equal(unpatchify(values, (h, w), (p, q)), images)


def test_patch_layout_is_the_reference_one():
    # reference: patch index = row-major over the grid; inside a patch (row p, column q, channel c),
    # channel fastest
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    values = patchify(images, (2, 2))
    for n in range(2):
        for gi in range(2):
            for gj in range(3):
                for pi in range(2):
                    for qj in range(2):
                        for c in range(3):
                            expected = images[n, c, gi * 2 + pi, gj * 2 + qj]
                            assert values[n, gi * 3 + gj, (pi * 2 + qj) * 3 + c] == expected


def test_patchifier_tokens_coords_and_meta_non_square():
    images = torch.randn(2, 1, 8, 12)
    patchifier = ImagePatchifier(patch_size=4, in_chans=1)
    tokens = patchifier(images)
    assert tokens.values.shape == (2, 6, 16)
    assert tokens.coords[0].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert tokens.meta["grid_size"] == (2, 3)
    assert torch.equal(patchifier.unpatchify(tokens.values, tokens.meta), images)


def test_patchifier_reads_mapping_batches():
    images = torch.randn(1, 3, 8, 8)
    assert torch.equal(ImagePatchifier(4)({"inputs": images, "label": torch.tensor([3])}).values, ImagePatchifier(4)(images).values)


@pytest.mark.parametrize("shape, message", [
    ((1, 3, 30, 32), "30×32 is not divisible by the patch size 16×16"),
    ((1, 1, 32, 32), "expected images with 3 channels (in_chans), got 1"),
    ((3, 32, 32), "expected images as a (B, C, H, W) tensor"),
])
def test_patchifier_bad_input_is_named(shape, message):
    with pytest.raises(ValueError) as error:
        ImagePatchifier(16, 3)(torch.randn(*shape))
    assert message in str(error.value)


def _tokens(batch: int, length: int, coords: torch.Tensor | None = None) -> Tokens:
    if coords is None:
        coords = torch.stack(torch.meshgrid(torch.arange(length), torch.arange(1), indexing="ij"), -1).reshape(1, length, 2)
    return Tokens(values=torch.randn(batch, length, 4), coords=coords.float().expand(batch, -1, -1))


def test_random_masking_matches_the_reference_computation():
    tokens = _tokens(2, 196)
    noise = torch.rand(2, 196)
    mask = RandomMasker(0.75)(tokens, noise)
    # independent: the 49 lowest-noise tokens are kept
    assert mask.num_visible == 49
    kept = torch.zeros(2, 196, dtype=torch.bool)
    kept.scatter_(1, noise.argsort(1)[:, :49], True)
    assert torch.equal(mask.masked.bool(), ~kept)
    assert torch.equal(mask.ids_keep, noise.argsort(1)[:, :49])


@settings(max_examples=50, deadline=None)
@given(batch=st.integers(1, 4), length=st.integers(1, 60), ratio=st.floats(0, 0.99), blocks=st.integers(1, 3),
       kind=st.sampled_from(["random", "block"]))
def test_masker_invariants(batch, length, ratio, blocks, kind):
    tokens = _tokens(batch, length)
    masker = RandomMasker(ratio) if kind == "random" else BlockMasker(ratio, num_blocks=blocks)
    mask = masker(tokens)
    keep = max(1, int(length * (1 - ratio)))
    assert mask.ids_keep.shape == (batch, keep)
    # kept + removed = all, and each kept id is unmasked
    assert int(mask.masked.sum()) == batch * (length - keep)
    assert torch.all(torch.gather(mask.masked, 1, mask.ids_keep) == 0)
    # ids_restore inverts the shuffle that put the kept tokens first
    arange = torch.arange(length).expand(batch, -1)
    ids_shuffle = torch.argsort(mask.ids_restore, dim=1)
    assert torch.equal(ids_shuffle[:, :keep], mask.ids_keep)
    assert torch.equal(torch.gather(ids_shuffle, 1, mask.ids_restore), arange)
    assert torch.equal(torch.sort(ids_shuffle, dim=1).values, arange)


def test_noise_makes_masking_deterministic_and_is_checked():
    tokens = _tokens(2, 16)
    noise = torch.rand(2, 16)
    for masker in (RandomMasker(0.5), BlockMasker(0.5)):
        assert torch.equal(masker(tokens, noise).masked, masker(tokens, noise).masked)
    with pytest.raises(ValueError, match=r"noise must have shape \(batch, tokens\) = \(2, 16\)"):
        RandomMasker(0.5)(tokens, torch.rand(2, 15))


def test_block_masker_removes_the_tokens_nearest_the_seed():
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    coords = torch.stack([rows, cols], -1).reshape(1, 64, 2)
    tokens = _tokens(1, 64, coords)
    noise = torch.rand(1, 64)
    noise[0, 27] = -1.0  # seed = token (3, 3)
    mask = BlockMasker(0.25, num_blocks=1)(tokens, noise)
    distance = (coords[0].float() - torch.tensor([3.0, 3.0])).norm(dim=-1)
    removed = mask.masked[0].bool()
    assert int(removed.sum()) == 16
    assert distance[removed].max() <= distance[~removed].min()


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, "0.5"])
def test_mask_ratio_outside_range_is_refused(ratio):
    with pytest.raises(ValueError, match=r"mask_ratio must be in \[0, 1\)"):
        RandomMasker(ratio)


def test_given_masker_keeps_pattern_and_checks_counts():
    pattern = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0]])
    mask = GivenMasker(pattern)(_tokens(2, 4))
    assert torch.equal(mask.masked, pattern.float())
    assert mask.ids_keep.tolist() == [[1, 3], [0, 3]]
    with pytest.raises(ValueError, match="same number of tokens"):
        GivenMasker([[1, 0, 0], [1, 1, 0]])


def test_mask_keep_all_is_identity():
    mask = Mask.keep_all(2, 5)
    assert mask.masked.sum() == 0 and mask.ids_restore.tolist() == [list(range(5))] * 2


def test_given_masker_refuses_bad_patterns():
    with pytest.raises(ValueError, match="at least one must stay visible"):
        GivenMasker([[1, 1, 1]])
    with pytest.raises(ValueError, match="given mask has 3 rows for a batch of 2"):
        GivenMasker(torch.zeros(3, 4))(_tokens(2, 4))
