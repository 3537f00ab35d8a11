import numpy as np
import pytest
import torch

from maekit.nn.pos_embed import resample_grid_table, sincos_2d_table, sincos_embed


def reference_2d_sincos(embed_dim: int, grid_size: int, cls_token: bool) -> np.ndarray:
    """util/pos_embed.py of facebookresearch/mae, transcribed (np.float is float64)."""
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])

    def one_d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64)
        omega /= dim / 2.0
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    emb = np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


@pytest.mark.parametrize("dim, grid", [(768, 14), (512, 14), (192, 7), (64, 4)])
def test_table_is_the_reference_bit_for_bit(dim, grid):
    ours = sincos_2d_table((grid, grid), dim)
    reference = torch.from_numpy(reference_2d_sincos(dim, grid, cls_token=True)).float().unsqueeze(0)
    assert torch.equal(ours, reference)


def test_first_half_encodes_the_column():
    table = sincos_2d_table((3, 5), 8, num_prefix_tokens=0)[0]
    # token (row 1, col 2) = index 7: sin(col·ω0) first, sin(row·ω0) in the second half
    assert table[7, 0].item() == pytest.approx(np.sin(2.0))
    assert table[7, 4].item() == pytest.approx(np.sin(1.0))


def test_continuous_embedding_reproduces_the_table_for_column_row_coords():
    rows, cols = torch.meshgrid(torch.arange(6), torch.arange(9), indexing="ij")
    coords = torch.stack([cols, rows], -1).reshape(-1, 2).float()
    assert torch.allclose(sincos_embed(coords, 64), sincos_2d_table((6, 9), 64, 0)[0], atol=1e-6)


def test_widths_are_checked():
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d_table((2, 2), 30)
    with pytest.raises(ValueError, match="divisible by 2×3"):
        sincos_embed(torch.zeros(4, 3), 64)


def test_resample_keeps_prefix_and_identity_and_shape():
    table = torch.randn(1, 1 + 16, 8)
    assert resample_grid_table(table, (4, 4), (4, 4)) is table
    bigger = resample_grid_table(table, (4, 4), (6, 8))
    assert bigger.shape == (1, 1 + 48, 8)
    assert torch.equal(bigger[:, :1], table[:, :1])
    # bicubic resampling of a constant grid stays constant
    flat = torch.ones(1, 17, 8)
    assert torch.allclose(resample_grid_table(flat, (4, 4), (7, 5)), torch.ones(1, 36, 8), atol=1e-5)


def dino_interpolate_pos_encoding(pos_embed: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """CropMAE's ``downstreams/propagation/src/models_mae.py`` (DINO's), transcribed: the
    table scaled by (new + 0.1) / old rather than resized to the new grid."""
    import math

    n = pos_embed.shape[1] - 1
    class_pos_embed, patch_pos_embed = pos_embed[:, 0], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    w0, h0 = height // patch + 0.1, width // patch + 0.1
    patch_pos_embed = torch.nn.functional.interpolate(
        patch_pos_embed.reshape(1, int(math.sqrt(n)), int(math.sqrt(n)), dim).permute(0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(n), h0 / math.sqrt(n)), mode="bicubic")
    assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


def test_dino_style_resampling_matches_cropmaes_evaluation():
    from maekit.nn.encoder import ViTEncoder

    table = torch.randn(1, 1 + 14 * 14, 8)
    dino = resample_grid_table(table, (14, 14), (30, 55), scale_offset=0.1)
    assert torch.equal(dino, dino_interpolate_pos_encoding(table, 480, 880, 16))
    # the same grid, sampled a fraction of a cell elsewhere than resizing to it
    assert not torch.allclose(dino, resample_grid_table(table, (14, 14), (30, 55)), atol=1e-4)
    encoder = ViTEncoder("vit_tiny_patch16_224", img_size=224, table_scale_offset=0.1)
    assert torch.equal(encoder.grid_table((30, 55)), dino_interpolate_pos_encoding(encoder.pos_embed, 480, 880, 16))
    with pytest.raises(ValueError, match="table_scale_offset must be in"):
        ViTEncoder("vit_tiny_patch16_224", table_scale_offset=1.5)
