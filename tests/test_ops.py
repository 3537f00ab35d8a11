"""maekit.ops: each helper against an independent computation."""
import pytest
import torch
from torch import nn

from maekit.ops import denorm_pix, fill_mask_tokens, gather, init_mae_weights, init_trunc_normal_weights, masked_mean, norm_pix


def test_gather_picks_tokens_by_index_for_any_trailing_shape():
    x = torch.randn(2, 5, 3, 4)
    ids = torch.tensor([[4, 0], [2, 2]])
    picked = gather(x, ids)
    assert picked.shape == (2, 2, 3, 4)
    for b in range(2):
        for k in range(2):
            assert torch.equal(picked[b, k], x[b, ids[b, k]])


def test_fill_mask_tokens_puts_visible_tokens_back_in_place_and_the_token_elsewhere():
    ids_shuffle = torch.tensor([[3, 1, 0, 2], [0, 2, 3, 1]])
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    visible = torch.randn(2, 2, 6)  # the first two of each shuffle are kept
    token = torch.randn(1, 1, 6)
    full = fill_mask_tokens(visible, ids_restore, token)
    for b in range(2):
        for slot, position in enumerate(ids_shuffle[b].tolist()):
            expected = visible[b, slot] if slot < 2 else token[0, 0]
            assert torch.equal(full[b, position], expected)


def test_norm_pix_is_the_references_unbiased_standardisation_and_denorm_pix_its_inverse():
    values = torch.randn(3, 7, 12, dtype=torch.float64) * 3 + 1
    normalised = norm_pix(values, eps=1e-6)
    for token, got in zip(values.reshape(-1, 12), normalised.reshape(-1, 12)):
        mean, var = token.mean(), ((token - token.mean()) ** 2).sum() / (12 - 1)  # unbiased, by hand
        torch.testing.assert_close(got, (token - mean) / (var + 1e-6).sqrt())
    torch.testing.assert_close(denorm_pix(normalised, values), values)
    biased = norm_pix(values, unbiased=False)
    torch.testing.assert_close(biased[0, 0], (values[0, 0] - values[0, 0].mean()) / (values[0, 0].var(unbiased=False) + 1e-6).sqrt())


def test_masked_mean_is_sum_over_weighted_divided_by_the_weights():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert masked_mean(values, weights).item() == pytest.approx(2.0)
    per_row = masked_mean(values, weights, dim=1)
    assert per_row[0].item() == pytest.approx(2.0) and torch.isnan(per_row[1])
    filled = masked_mean(values.requires_grad_(), weights, dim=1, empty=0.0)
    assert filled.tolist() == [2.0, 0.0]
    filled.sum().backward()
    assert torch.isfinite(values.grad).all() and values.grad[0].tolist() == [0.5, 0.0, 0.5]
    # broadcast weights (one per token) over the token's features, keeping dims
    features = torch.randn(2, 4, 3)
    valid = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]]).unsqueeze(-1)
    torch.testing.assert_close(masked_mean(features, valid, dim=1, keepdim=True)[0, 0], features[0, :2].mean(0))


def test_the_two_weight_inits():
    torch.manual_seed(0)
    linear, norm, conv = nn.Linear(64, 256), nn.LayerNorm(8), nn.Conv1d(3, 4, 1)
    for module in (linear, norm, conv):
        module.apply(init_mae_weights)
    bound = (6 / (64 + 256)) ** 0.5  # xavier-uniform
    assert linear.weight.abs().max() <= bound and linear.weight.abs().max() > 0.9 * bound
    assert torch.equal(linear.bias, torch.zeros(256)) and torch.equal(norm.weight, torch.ones(8))
    init_trunc_normal_weights(linear)
    assert abs(linear.weight.std().item() - 0.02) < 0.002 and torch.equal(linear.bias, torch.zeros(256))
    init_trunc_normal_weights(conv)
    assert torch.equal(conv.bias, torch.zeros(4)) and conv.weight.abs().max() < 0.2


def test_split_pair_halves_a_batch_of_pairs_and_names_what_it_expected():
    from maekit.ops import split_pair

    pairs = torch.randn(3, 2, 1, 4, 4)
    first, second = split_pair({"inputs": pairs}, 1, "view pairs (B, 2, C, H, W)")
    assert torch.equal(first, pairs[:, 0]) and torch.equal(second, pairs[:, 1])
    with pytest.raises(ValueError, match=r"view pairs \(B, 2, C, H, W\), got \(3, 1, 4, 4\)"):
        split_pair(pairs[:, 0], 1, "view pairs (B, 2, C, H, W)")
