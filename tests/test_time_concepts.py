"""Core's concepts for time and for masked modelling with mask tokens inside the encoder, against
independent computations: VideoMAE's sinusoid table, cube layout, tube and blockwise masks,
MaskFeat's HOG, clip samplers, the one-source-per-batch sampler, and the training view's seeding
of dataset reads and of several views per sample."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from maekit.data.clips import consecutive_frames, evaluation_starts, segment_frames, window_frames
from maekit.data.views import AugmentedView
from maekit.nn.masking import BlockwiseMasker, TubeMasker
from maekit.nn.patchify import CubePatchifier, cube_patchify, cube_unpatchify
from maekit.nn.pos_embed import sinusoid_table
from maekit.nn.targets import HOGTarget, hog_cells


def test_sinusoid_table_matches_the_reference_formula_element_by_element():
    table = sinusoid_table(7, 6)[0]
    for n in range(7):
        for j in range(6):
            angle = n / math.pow(10000, 2 * (j // 2) / 6)
            assert table[n, j].item() == pytest.approx(math.sin(angle) if j % 2 == 0 else math.cos(angle), abs=1e-7)



def test_tube_mask_removes_int_ratio_hw_per_slice_the_same_in_every_slice():
    tokens = CubePatchifier(16, 2, 3)(torch.zeros(3, 3, 16, 224, 224))
    mask = TubeMasker(0.9)(tokens)
    assert mask.masked.sum(1).tolist() == [8 * 176] * 3 and mask.num_visible == 8 * 20
    per_slice = mask.masked.reshape(3, 8, 196)
    assert (per_slice == per_slice[:, :1]).all()
    assert (mask.ids_keep.diff(dim=1) > 0).all()  # visible cubes in token order, as x[~mask]



def numpy_hog(image: np.ndarray, nbins: int = 9, cell: int = 8) -> np.ndarray:
    """MaskFeat's HOG written out pixel by pixel: (C, H, W) → (C, nbins, H/cell, W/cell)."""
    channels, height, width = image.shape
    out = np.zeros((channels, nbins, height // cell, width // cell))
    for c in range(channels):
        padded = np.pad(image[c], 1, mode="reflect")
        for y in range(height):
            for x in range(width):
                window = padded[y:y + 3, x:x + 3]
                gx = (window[:, 0] * [1, 2, 1]).sum() - (window[:, 2] * [1, 2, 1]).sum()
                gy = (window[0, :] * [1, 2, 1]).sum() - (window[2, :] * [1, 2, 1]).sum()
                b = int(math.floor(math.atan2(gx, gy) / math.pi * nbins)) % nbins
                out[c, b, y // cell, x // cell] += math.hypot(gx, gy)
    norms = np.sqrt((out ** 2).sum(axis=1, keepdims=True))
    return out / np.maximum(norms, 1e-12)



def test_hog_matches_a_pixel_by_pixel_derivation_and_puts_edges_in_their_bins():
    rng = np.random.default_rng(0)
    image = rng.random((3, 16, 16))
    np.testing.assert_allclose(hog_cells(torch.tensor(image, dtype=torch.float32)[None])[0].numpy(),
                               numpy_hog(image), rtol=1e-4, atol=1e-5)
    vertical = np.zeros((1, 16, 16))
    vertical[:, :, 8:] = 1.0  # brighter to the right: gx < 0, gy = 0 → atan2 = −π/2 → bin ⌊−4.5⌋ mod 9 = 4
    cells = hog_cells(torch.tensor(vertical, dtype=torch.float32)[None])[0, 0]
    assert torch.allclose(cells[:, :, 0], torch.tensor([0.0, 0, 0, 0, 1, 0, 0, 0, 0]).view(9, 1))
    horizontal = np.zeros((1, 16, 16))
    horizontal[:, 8:, :] = 1.0  # brighter below: gx = 0, gy < 0 → atan2 = π → bin 9 mod 9 = 0
    cells = hog_cells(torch.tensor(horizontal, dtype=torch.float32)[None])[0, 0]
    assert torch.allclose(cells[:, 0, :], torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0, 0]).view(9, 1))



def test_hog_target_orders_channel_bin_then_cells_and_uses_each_cubes_first_frame():
    clips = torch.rand(1, 3, 4, 16, 32)
    tokens = CubePatchifier(16, 2, 3)(clips)
    target = HOGTarget()(tokens)
    assert target.shape == (1, 4, 108)
    first = hog_cells(clips[:, :, 2])  # frame 2 starts the second time slice: tokens 2 and 3
    cell_row, cell_col, channel, b = 1, 0, 2, 7
    token = 2 + 1  # second slice, column 1 → cells 2..3
    expected = first[0, channel, b, cell_row, 2 + cell_col]
    assert target[0, token, ((channel * 9 + b) * 2 + cell_row) * 2 + cell_col] == expected



def test_blockwise_video_mask_counts_and_units():
    tokens = CubePatchifier(16, 2, 3)(torch.zeros(16, 3, 16, 224, 224))
    masker = BlockwiseMasker(0.4, window=(8, 7, 7))
    counts = []
    for seed in range(4):
        mask = masker(tokens, noise=torch.rand(16, 1, generator=torch.Generator().manual_seed(seed)))
        grid = mask.masked.reshape(16, 8, 14, 14)
        assert torch.equal(grid, grid[:, :, ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3))  # 2×2 units
        counts += (mask.masked.sum(1) / 4).tolist()
    assert max(counts) <= 157 and sum(counts) / len(counts) > 140  # blocks stop at or below round(392·0.4)



def test_blockwise_image_mask_counts_given_directly_and_the_exact_variant():
    from maekit.structures import Tokens

    tokens = Tokens(values=torch.zeros(64, 196, 1), coords=torch.zeros(64, 196, 2), meta={"grid_size": (14, 14)})
    noise = torch.rand(64, 1, generator=torch.Generator().manual_seed(0))
    varying = BlockwiseMasker(num_masking=75, min_block=16)(tokens, noise=noise)
    counts = varying.masked.sum(1)
    assert counts.max() <= 75 and len(set(counts.tolist())) > 1 and varying.variable_count  # BEiT: up to 75
    exact = BlockwiseMasker(num_masking=75, min_block=16, exact=True)(tokens, noise=noise)
    grid = exact.masked.view(64, 14, 14)
    assert (exact.masked.sum(1) == 75).all() and not grid[:, -1].any() and not grid[:, :, -1].any()
    assert torch.equal(BlockwiseMasker(num_masking=75, min_block=16)(tokens, noise=noise).masked, varying.masked)
    with pytest.raises(ValueError, match="num_masking must be a positive int"):
        BlockwiseMasker(num_masking=0)
    with pytest.raises(ValueError, match="at most 169 of a 14×14 grid, asked for 172"):
        BlockwiseMasker(num_masking=172, exact=True)(tokens, noise=noise)
    cubes = Tokens(values=torch.zeros(2, 32, 1), coords=torch.zeros(2, 32, 3), meta={"grid_size": (2, 4, 4)})
    with pytest.raises(ValueError, match="no exact variant"):
        BlockwiseMasker(num_masking=10, exact=True)(cubes)



def test_clip_samplers_follow_the_references_rules():
    torch.manual_seed(0)
    starts = {consecutive_frames(100, 16, 4)[0] for _ in range(300)}
    assert min(starts) == 0 and max(starts) == 100 - 64 and consecutive_frames(100, 16, 4, 7) == list(range(7, 71, 4))
    assert consecutive_frames(61, 16, 4) == list(range(0, 61, 4))  # just fits: (16-1)·4+1 = 61 frames
    with pytest.raises(ValueError, match="has 60 frames; a clip of 16 frames at stride 4 needs 61"):
        consecutive_frames(60, 16, 4)
    assert window_frames(300, 30.0, 16, 2.7, start=1.0) == [int(30 + i * 80 / 15) for i in range(16)]
    assert segment_frames(160, 16, train=False) == [int(5 + 10 * i) for i in range(16)]
    picks = segment_frames(160, 16, train=True)
    assert all(10 * i <= p < 10 * (i + 1) for i, p in enumerate(picks))
    assert evaluation_starts(100, 64, 5) == [0, 9, 18, 27, 36] and evaluation_starts(100, 64, 1) == [18]



def test_one_source_per_batch_sampler_never_mixes_sources_even_across_ranks_and_is_seeded():
    from mmengine.registry import DATA_SAMPLERS

    import maekit.engine.sampler  # noqa: F401  (registers the samplers)
    from maekit.data.sources import ConcatSources
    from maekit.engine.train import _samplers

    class TwoClips:  # a transform giving two augmented copies per sample
        repeats = 2

        def __call__(self, image):
            return torch.stack([image, image.flip(-1)])

    sources = ConcatSources([dict(name="images", dataset=dict(type="image_arrays", images=np.zeros((13, 8, 8, 3), np.uint8))),
                             dict(name="clips", dataset=dict(type="image_arrays", images=np.ones((9, 8, 8, 3), np.uint8)),
                                  transform=TwoClips(), repeat_factor=0.5)])
    assert sources.clips_per_sample == [1, 2]
    view = AugmentedView(sources)

    def batch_sampler(rank: int = 0, world: int = 1, seed: int = 5):
        entries = _samplers("one_source_per_batch", seed)
        inner = DATA_SAMPLERS.build(dict(entries["sampler"], dataset=view))
        inner.rank, inner.world_size = rank, world  # as a DDP process would see it
        return DATA_SAMPLERS.build(dict(entries["batch_sampler"], sampler=inner, batch_size=4))

    batches = list(itertools.islice(iter(batch_sampler()), 40))
    assert all(len({view[v]["source"] for v in batch}) == 1 for batch in batches)
    assert {len(batch) for batch in batches if view[batch[0]]["source"] == 0} == {4}
    assert {len(batch) for batch in batches if view[batch[0]]["source"] == 1} == {2}  # 2 samples = 4 clips
    assert len(batch_sampler()) == 13 // 4 + int(9 // 2 * 0.5)
    assert list(itertools.islice(iter(batch_sampler()), 40)) == batches
    ranks = [list(itertools.islice(iter(batch_sampler(rank, 2)), 20)) for rank in (0, 1)]
    for first, second in zip(*ranks):  # every step: both ranks draw from the same source, different samples
        assert view[first[0]]["source"] == view[second[0]]["source"] and not set(first) & set(second)
    with pytest.raises(ValueError, match="needs a concat_sources dataset"):
        inner = DATA_SAMPLERS.build(dict(_samplers("shuffle", 0)["sampler"], dataset=AugmentedView(list(range(4)))))
        DATA_SAMPLERS.build(dict(type="MaekitOneSourceBatchSampler", sampler=inner, batch_size=2))


def test_cube_patchify_layout_images_as_one_tubelet_and_views_flattened_sample_major():
    clips = torch.randn(2, 3, 4, 16, 24)
    values = cube_patchify(clips, (2, 8, 8))
    t, h, w, p0, p1, p2, c = 1, 0, 2, 1, 3, 5, 2  # 'b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)'
    assert values[1, t * 6 + h * 3 + w, ((p0 * 8 + p1) * 8 + p2) * 3 + c] == clips[1, c, t * 2 + p0, h * 8 + p1, w * 8 + p2]
    assert torch.equal(cube_unpatchify(values, (2, 2, 3), (2, 8, 8)), clips)
    patchifier = CubePatchifier(8, 2, 3)
    image = torch.randn(2, 3, 16, 24)
    assert torch.equal(patchifier(image).values, patchifier(image[:, :, None].repeat(1, 1, 2, 1, 1)).values)
    views = torch.randn(2, 3, 3, 4, 16, 24)
    assert torch.equal(patchifier({"inputs": views}).values, patchifier(views.flatten(0, 1)).values)
    with pytest.raises(ValueError, match="clip size 5×16×24 .* not divisible by the cube size 2×8×8"):
        patchifier(torch.zeros(1, 3, 5, 16, 24))


def test_variable_count_masks_need_mask_tokens_inside_the_encoder():
    from maekit.methods.mae import mae
    from maekit.model import MaskTokenModel
    from maekit.structures import Mask

    masked = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1]])
    mask = Mask.from_masked(masked)
    assert mask.variable_count and mask.masked.tolist() == masked.float().tolist() and mask.num_visible == 2
    assert mask.ids_keep.tolist() == [[1, 3], [0, 1]]
    model = mae(size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1,
                encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1,
                decoder_num_heads=2, masking="blockwise_mask", mask_ratio=0.4)
    with pytest.raises(ValueError, match="removes a different number of tokens per sample"):
        model.encoder_input(None, model.tokenize(torch.zeros(2, 1, 16, 16)), mask)
    tokenwise = MaskTokenModel(patchifier=dict(type="image_patches", patch_size=4, in_chans=1),
                               masker=dict(type="blockwise_mask", mask_ratio=0.4),
                               encoder=dict(type="vit_encoder", model_name="vit_tiny_patch16_224", img_size=16, patch_size=4,
                                            in_chans=1, embed_dim=32, depth=1, num_heads=2, mask_token=True),
                               decoder=dict(type="linear_head", encoder_dim=32, out_dim=16),
                               target=dict(type="pixels"), loss=dict(type="masked_mse"))
    images = torch.randn(2, 1, 16, 16)
    tokens = tokenwise.tokenize(images)
    latents, _ = tokenwise.encode_visible(tokenwise.encoder_input(images, tokens, Mask.from_masked(torch.eye(2, 16))))
    assert latents.shape == (2, 17, 32)  # every token (and cls) is encoded
    changed = images.clone()
    changed[:, :, :4, :4] += 3.0  # token 0, removed in sample 0 only
    again, _ = tokenwise.encode_visible(tokenwise.encoder_input(changed, tokenwise.tokenize(changed),
                                                                Mask.from_masked(torch.eye(2, 16))))
    assert torch.allclose(again[0], latents[0]) and not torch.allclose(again[1], latents[1])
    assert tokenwise({"inputs": images})["loss"].isfinite()


def test_query_value_biases_without_a_key_bias():
    from maekit.nn.attention import Attention

    attn = Attention(8, 2, qkv_bias="qv")
    assert attn.qkv.bias is None and set(dict(attn.named_parameters())) == {"qkv.weight", "q_bias", "v_bias",
                                                                            "proj.weight", "proj.bias"}
    with torch.no_grad():
        attn.q_bias.normal_(), attn.v_bias.normal_()
    x = torch.randn(2, 5, 8)
    q, k, v = (torch.nn.functional.linear(x, w, b) for w, b in zip(attn.qkv.weight.chunk(3), (attn.q_bias, None, attn.v_bias)))
    q, k, v = (t.view(2, 5, 2, 4).transpose(1, 2) for t in (q, k, v))
    expected = attn.proj(((q @ k.transpose(-1, -2)) / 2).softmax(-1).matmul(v).transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_norm_pix_with_input_statistics_undone_inverts_for_pictures():
    from maekit.nn.targets import NormPixelTarget

    tokens = CubePatchifier(4, 2, 3)(torch.randn(2, 3, 2, 8, 8))
    target = NormPixelTarget(per_channel=True, eps_in_sqrt=False, pixel_mean=(0.4, 0.5, 0.6), pixel_std=(0.2, 0.3, 0.1))
    normalised = target(tokens)
    pixels = tokens.values.reshape(2, 4, 32, 3) * torch.tensor((0.2, 0.3, 0.1)) + torch.tensor((0.4, 0.5, 0.6))
    expected = (pixels - pixels.mean(2, keepdim=True)) / (pixels.std(2, keepdim=True) + 1e-6)
    torch.testing.assert_close(normalised, expected.reshape(2, 4, 96), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(target.to_values(normalised, tokens), tokens.values, rtol=1e-4, atol=1e-4)


def test_training_view_seeds_dataset_reads_and_sample_noise_gives_each_view_its_own_row():
    from maekit.engine.model import SampleNoise

    class Drawing(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return {"inputs": torch.rand(2)}  # a clip's start drawn while reading

    view = AugmentedView(Drawing(), seed=1)
    assert torch.equal(view[4]["inputs"], AugmentedView(Drawing(), seed=1)[4]["inputs"])
    assert not torch.equal(view[4]["inputs"], view[1]["inputs"])
    noise = SampleNoise(0, torch.tensor([5, 9]))
    single, double = noise((2, 6), "cpu"), noise((4, 6), "cpu")
    assert torch.equal(double[0], single[0]) and torch.equal(double[2], single[1]) and not torch.equal(double[0], double[1])
    with pytest.raises(ValueError, match="noise for 2 samples asked for a batch of 3"):
        noise((3, 6), "cpu")
