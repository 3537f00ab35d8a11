"""maekit's attention: timm's module and numbers in float32, float32 attention under CPU autocast."""
import pytest
import torch
from timm.layers import Attention as TimmAttention
from torch.nn import functional as F

from maekit.nn.attention import Attention, attend, runs_attention_in_float32
from maekit.nn.encoder import make_blocks


def _pair(dim: int = 64, heads: int = 4) -> tuple[Attention, TimmAttention]:
    torch.manual_seed(0)
    ours = Attention(dim, heads, qkv_bias=True)
    theirs = TimmAttention(dim, heads, qkv_bias=True)
    theirs.load_state_dict(ours.state_dict())  # same names: a timm checkpoint loads as it is
    return ours, theirs


def test_same_parameters_names_and_output_as_timm_in_float32():
    ours, theirs = _pair()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(3, 10, 64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


def test_blocks_attend_through_maekit_attention():
    blocks = make_blocks(32, 2, 4)
    assert all(type(block.attn) is Attention for block in blocks)
    assert blocks(torch.randn(2, 5, 32)).shape == (2, 5, 32)
    scaled = make_blocks(32, 2, 4, init_values=0.1, attention=lambda i: Attention(32, 4, qkv_bias="qv"))
    assert all(torch.all(block.ls1.gamma == 0.1) and block.attn.q_bias is not None for block in scaled)  # BEiT's


def test_inner_width_may_differ_and_a_bad_width_is_named():
    attention = Attention(64, 8, head_dim=16)  # MAE3D's layout: heads × head_dim ≠ dim
    assert attention.qkv.weight.shape == (3 * 8 * 16, 64) and attention.proj.weight.shape == (64, 128)
    assert attention(torch.randn(2, 5, 64)).shape == (2, 5, 64)
    with pytest.raises(ValueError, match="width 30 must be divisible by num_heads 4"):
        Attention(30, 4)


def test_cpu_autocast_attends_in_float32_and_is_closer_to_float32():
    ours, theirs = _pair()
    x = torch.randn(4, 50, 64)
    exact = theirs(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_ours, low_theirs = ours(x), theirs(x)
        q = torch.randn(2, 4, 8, 16).bfloat16()
        assert runs_attention_in_float32(q)
        assert attend(q, q, q).dtype == torch.bfloat16  # handed back in the autocast dtype
    assert not runs_attention_in_float32(q)  # outside autocast: as given
    assert low_ours.dtype == low_theirs.dtype == torch.bfloat16
    error_ours = (low_ours.float() - exact).abs().mean()
    error_theirs = (low_theirs.float() - exact).abs().mean()
    assert error_ours < error_theirs


def test_attend_matches_the_formula_with_mask_and_causal():
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 2, 2, 6, 8).unbind(0)
    bias = torch.randn(6, 6)
    scores = q @ k.transpose(-1, -2) / 8 ** 0.5 + bias
    torch.testing.assert_close(attend(q, k, v, attn_mask=bias), scores.softmax(-1) @ v, rtol=1e-5, atol=1e-6)
    causal = torch.ones(6, 6).tril().bool()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), is_causal=True)
    wanted = F.scaled_dot_product_attention(q, k, v, attn_mask=causal)
    torch.testing.assert_close(out.float(), wanted, rtol=2e-2, atol=2e-2)


def test_gradients_flow_in_the_autocast_dtype():
    ours, _ = _pair()
    x = torch.randn(2, 12, 64, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours(x).float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert ours.qkv.weight.grad is not None and ours.qkv.weight.grad.abs().sum() > 0
