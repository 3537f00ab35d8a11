"""BEiT's mechanisms against independent computations: the relative position table, the
blockwise masker's statistics, the masked-token loss, the reference init; parity with
transformers' BeitForMaskedImageModeling and timm's Beit on copied weights; the converters.
Run alone with: MAEKIT_PLUGINS=maekit-beit python -m pytest plugins/beit/tests"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from maekit_beit.convert import maekit_to_timm_beit, maekit_to_transformers, maekit_to_unilm, unilm_to_maekit
from maekit_beit.encoder import BEiTEncoder, relative_position_index

from maekit.io.checkpoint import CheckpointError
from maekit.model import seeded_noise
from maekit.nn.masking import BlockwiseMasker
from maekit.structures import Tokens


def tiny_beit(rel_pos: str = "shared", vocab: int = 16, seed: int = 0, **options):
    """BEiT on 32-px RGB images, patch 4 (8×8 tokens), 32 wide, 2 blocks, with a VQ tokenizer of
    ``vocab`` codes fitted for a few steps on random images; weights that the reference init
    leaves at constants (relative tables, layer scale) randomised, so parity tests compare them."""
    from maekit_beit.model import beit

    torch.manual_seed(seed)
    model = beit(size=None, img_size=32, patch_size=4, encoder=dict(embed_dim=32, depth=2, num_heads=4),
                 num_masking=25, min_block=5, rel_pos=rel_pos, drop_path_rate=0.0,
                 tokenizer=dict(type="vq", patch_size=4, vocab_size=vocab, code_dim=8, hidden=16, fit_steps=3,
                                fit_batch=8), **options)
    model.target.tokenizer.fit([torch.randn(16, 3, 32, 32)], seed=seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "relative_position_bias_table" in name or name.endswith(("gamma", "q_bias", "v_bias")):
                parameter.normal_(0, 0.5)
    return model.eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# -- relative positions ----------------------------------------------------------------------
@pytest.mark.parametrize("grid", [(3, 3), (2, 4), (14, 14)])
def test_relative_position_index_is_the_reference_layout_written_out(grid):
    height, width = grid
    rows = (2 * height - 1) * (2 * width - 1)
    cells = [(r, c) for r in range(height) for c in range(width)]
    expected = np.zeros((len(cells) + 1,) * 2, dtype=np.int64)
    for i, (ri, ci) in enumerate(cells, start=1):
        for j, (rj, cj) in enumerate(cells, start=1):
            expected[i, j] = (ri - rj + height - 1) * (2 * width - 1) + (ci - cj + width - 1)
    expected[0, 1:], expected[1:, 0], expected[0, 0] = rows, rows + 1, rows + 2  # cls→tok, tok→cls, cls→cls
    assert np.array_equal(relative_position_index(grid).numpy(), expected)
    from timm.models.beit import gen_relative_position_index
    assert torch.equal(relative_position_index(grid), gen_relative_position_index(grid))
    if grid == (14, 14):
        assert int(relative_position_index(grid).max()) + 1 == 732  # (2·14−1)² + 3 rows


# -- the masker ------------------------------------------------------------------------------
def reference_block_mask(rng: np.random.Generator, exact: bool, height: int = 14, width: int = 14, num: int = 75,
                         min_num: int = 16, min_aspect: float = 0.3) -> np.ndarray:
    """unilm's MaskingGenerator (exact=False) and MMPretrain's BEiTMaskGenerator (exact=True), with numpy draws."""
    mask = np.zeros((height, width), dtype=int)
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    count = 0
    while count < num:
        budget = num - count
        delta = 0
        for _ in range(10):
            area = min_num + (budget - min_num) * rng.random()  # uniform(a, b), b < a allowed as python's
            aspect = math.exp(rng.uniform(*log_aspect))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                if exact:  # numpy's exclusive bound
                    top, left = rng.integers(0, height - h), rng.integers(0, width - w)
                else:  # python's random.randint, inclusive
                    top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
                new = h * w - mask[top:top + h, left:left + w].sum()
                if 0 < new <= budget:
                    mask[top:top + h, left:left + w] = 1
                    delta = new
            if delta > 0:
                break
        if delta == 0 and not exact:
            break
        count += delta
    return mask


def masker_counts(masker: BlockwiseMasker, samples: int) -> torch.Tensor:
    tokens = Tokens(values=torch.zeros(samples, 196, 1), coords=torch.zeros(samples, 196, 2), meta={"grid_size": (14, 14)})
    return masker(tokens, noise=seeded_noise(3)).masked


def test_beit_masker_counts_vary_below_75_as_the_reference_and_exact_variant_hits_75():
    samples = 1500
    masked = masker_counts(BlockwiseMasker(num_masking=75, min_block=16), samples)
    counts = masked.sum(1)
    rng = np.random.default_rng(0)
    reference = np.array([reference_block_mask(rng, exact=False).sum() for _ in range(samples)])
    assert counts.max() <= 75 and reference.max() <= 75
    assert len(set(counts.tolist())) > 3  # counts vary per image
    # same law: mean count and share of masks that reach 75, within sampling error
    assert abs(counts.float().mean().item() - reference.mean()) < 0.6
    assert abs((counts == 75).float().mean().item() - (reference == 75).mean()) < 0.05
    # each position is covered about equally often away from the edges; the centre more than corners
    coverage = masked.view(samples, 14, 14).float().mean(0)
    reference_coverage = np.mean([reference_block_mask(rng, exact=False) for _ in range(600)], axis=0)
    assert abs(coverage[7, 7].item() - reference_coverage[7, 7]) < 0.1 and coverage[7, 7] > coverage[0, 0]

    exact = masker_counts(BlockwiseMasker(num_masking=75, min_block=16, exact=True), 300)
    assert (exact.sum(1) == 75).all()
    grid = exact.view(300, 14, 14)
    assert grid[:, -1, :].sum() == 0 and grid[:, :, -1].sum() == 0  # numpy's bound: never the last row/column
    assert all(reference_block_mask(rng, exact=True).sum() == 75 for _ in range(50))


def test_blockwise_masker_rejects_a_count_beyond_the_grid_and_exact_video():
    tokens = Tokens(values=torch.zeros(1, 16, 1), coords=torch.zeros(1, 16, 2), meta={"grid_size": (4, 4)})
    with pytest.raises(ValueError, match="num_masking 20 exceeds the 16"):
        BlockwiseMasker(num_masking=20)(tokens)
    with pytest.raises(ValueError, match="exact=True"):
        BlockwiseMasker(window=(2, 4, 4), exact=True)


# -- the loss, the head, the init -------------------------------------------------------------
def test_loss_is_cross_entropy_over_every_masked_token_of_the_batch(images):
    model = tiny_beit()
    out = model.run_steps(images, noise=seeded_noise(0))
    removed = out.mask.masked.bool()
    assert removed.sum(1).max() <= 25
    # the reference's computation: every patch embedded, masked ones swapped for the mask token
    encoder = model.encoder
    x = encoder.embed_tokens(out.tokens.values)
    x = torch.where(removed[..., None], encoder.mask_token.expand_as(x), x)
    x = torch.cat([encoder.cls_token.expand(len(x), -1, -1), x], 1)
    bias = encoder.rel_pos_bias()
    for block in encoder.blocks:
        x = block(x, attn_mask=bias[None])
    hidden = encoder.norm(x)[:, 1:]
    logits = model.decoder.pred(hidden[removed])
    expected = torch.nn.functional.cross_entropy(logits, out.target[removed])
    losses = model.compute_loss(out)
    assert torch.allclose(losses["loss"], expected, atol=1e-5)
    assert torch.allclose(out.pred[removed], logits, atol=1e-5)
    assert (out.pred[~removed] == 0).all()  # only masked rows computed, as lm_head(x[mask])
    accuracy = (logits.argmax(-1) == out.target[removed]).float().mean()
    assert torch.isclose(losses["cross_entropy_accuracy"], accuracy)


def test_reference_init_truncates_at_one_std_and_rescales_deeper_projections():
    torch.manual_seed(0)
    encoder = BEiTEncoder(img_size=64, patch_size=8, embed_dim=96, depth=3, num_heads=4, init_values=0.1)
    qkv = encoder.blocks[0].attn.qkv.weight
    # N(0, σ²) cut at ±σ: std = σ·√(1 − 2φ(1) / (2Φ(1) − 1)) ≈ 0.54σ (untruncated timm init: ≈ σ)
    phi, Phi = math.exp(-0.5) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    expected_std = 0.02 * math.sqrt(1 - 2 * phi / (2 * Phi - 1))
    assert qkv.abs().max() <= 0.02 + 1e-7 and abs(qkv.std().item() / expected_std - 1) < 0.03
    for layer, block in enumerate(encoder.blocks, start=1):
        assert block.attn.proj.weight.abs().max() <= 0.02 / math.sqrt(2 * layer) + 1e-7
        assert block.mlp.fc2.weight.abs().max() <= 0.02 / math.sqrt(2 * layer) + 1e-7
        assert torch.all(block.ls1.gamma == 0.1) and torch.all(block.attn.q_bias == 0)
    assert encoder.mask_token.abs().max() <= 0.02 and encoder.cls_token.abs().max() <= 0.02
    assert torch.all(encoder.rel_pos_bias.relative_position_bias_table == 0)
    assert encoder.blocks[0].attn.qkv.bias is None  # q and v biases, no k bias
    assert encoder.pos_embed is None
    assert "rel_pos_bias.relative_position_bias_table" not in encoder.no_weight_decay()  # the reference decays it


# -- parity ----------------------------------------------------------------------------------
def test_logits_and_loss_match_transformers_beit_for_masked_image_modeling(images):
    transformers = pytest.importorskip("transformers")
    model = tiny_beit(vocab=16)
    out = model.run_steps(images, noise=seeded_noise(4))
    removed = out.mask.masked.bool()
    config = transformers.BeitConfig(
        image_size=32, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, vocab_size=16, use_mask_token=True, use_absolute_position_embeddings=False,
        use_relative_position_bias=False, use_shared_relative_position_bias=True, layer_scale_init_value=0.1,
        layer_norm_eps=1e-6, use_mean_pooling=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        drop_path_rate=0.0)
    theirs = transformers.BeitForMaskedImageModeling(config).eval()
    state = maekit_to_transformers(model.state_dict(), names=int(transformers.__version__.split('.')[0]))
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected and not missing, (missing, unexpected)
    with torch.no_grad():
        result = theirs(pixel_values=images, bool_masked_pos=removed, labels=out.target[removed])
    assert torch.allclose(result.logits[removed], out.pred[removed], atol=1e-5)
    assert torch.allclose(result.loss, model.compute_loss(out)["loss"], atol=1e-5)


@pytest.mark.parametrize("rel_pos", ["shared", "per_block"])
def test_exported_encoder_loads_into_timm_beit_and_gives_the_same_features(images, rel_pos):
    from timm.models.beit import Beit

    model = tiny_beit(rel_pos=rel_pos)
    shared = rel_pos == "shared"
    timm_beit = Beit(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=4, num_classes=0, global_pool="token", init_values=0.1,
                     use_abs_pos_emb=False, use_shared_rel_pos_bias=shared, use_rel_pos_bias=not shared).eval()
    timm_beit.load_state_dict(maekit_to_timm_beit(model.state_dict()), strict=True)
    ours = model.encode(images)
    with torch.no_grad():
        assert torch.allclose(timm_beit.forward_features(images), ours, atol=1e-5)
    if shared:  # fine-tuning's layout: the shared table copied into every block
        per_block = Beit(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=4, num_classes=0, global_pool="token", init_values=0.1,
                         use_abs_pos_emb=False, use_rel_pos_bias=True).eval()
        per_block.load_state_dict(maekit_to_timm_beit(model.state_dict(), per_block=True), strict=True)
        with torch.no_grad():
            assert torch.allclose(per_block.forward_features(images), ours, atol=1e-5)


# -- the official layout ---------------------------------------------------------------------
def official_names(depth: int, dim: int, vocab: int, patch: int, grid: int, heads: int) -> dict[str, tuple[int, ...]]:
    """The keys and shapes of unilm's VisionTransformerForMaskedImageModeling (use_shared_rel_pos_bias)."""
    rows = (2 * grid - 1) ** 2 + 3
    names = {"cls_token": (1, 1, dim), "mask_token": (1, 1, dim), "patch_embed.proj.weight": (dim, 3, patch, patch),
             "patch_embed.proj.bias": (dim,), "rel_pos_bias.relative_position_bias_table": (rows, heads),
             "rel_pos_bias.relative_position_index": (grid * grid + 1,) * 2, "norm.weight": (dim,), "norm.bias": (dim,),
             "lm_head.weight": (vocab, dim), "lm_head.bias": (vocab,)}
    for i in range(depth):
        names.update({f"blocks.{i}.gamma_1": (dim,), f"blocks.{i}.gamma_2": (dim,), f"blocks.{i}.norm1.weight": (dim,),
                      f"blocks.{i}.norm1.bias": (dim,), f"blocks.{i}.attn.q_bias": (dim,), f"blocks.{i}.attn.v_bias": (dim,),
                      f"blocks.{i}.attn.qkv.weight": (3 * dim, dim), f"blocks.{i}.attn.proj.weight": (dim, dim),
                      f"blocks.{i}.attn.proj.bias": (dim,), f"blocks.{i}.norm2.weight": (dim,), f"blocks.{i}.norm2.bias": (dim,),
                      f"blocks.{i}.mlp.fc1.weight": (4 * dim, dim), f"blocks.{i}.mlp.fc1.bias": (4 * dim,),
                      f"blocks.{i}.mlp.fc2.weight": (dim, 4 * dim), f"blocks.{i}.mlp.fc2.bias": (dim,)})
    return names


def test_official_checkpoint_converts_strictly_both_ways():
    model = tiny_beit()
    names = official_names(depth=2, dim=32, vocab=16, patch=4, grid=8, heads=4)
    generator = torch.Generator().manual_seed(0)
    official = {k: torch.randn(shape, generator=generator) for k, shape in names.items()}
    official["rel_pos_bias.relative_position_index"] = relative_position_index((8, 8))
    ours = unilm_to_maekit({"model": official})
    result = model.load_state_dict(ours, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith("target.tokenizer.") for k in result.missing_keys)  # the tokenizer is not BEiT's file
    assert torch.equal(model.encoder.blocks[1].ls2.gamma, official["blocks.1.gamma_2"])
    assert torch.equal(model.decoder.pred.weight, official["lm_head.weight"])
    back = maekit_to_unilm(model.state_dict())
    assert set(back) == set(names) - {"rel_pos_bias.relative_position_index"}
    assert all(torch.equal(back[k], official[k]) for k in back)
    # the official ViT-B file's shapes: 732-row table, 8192-id head
    base = official_names(depth=12, dim=768, vocab=8192, patch=16, grid=14, heads=12)
    assert base["rel_pos_bias.relative_position_bias_table"] == (732, 12) and base["lm_head.weight"] == (8192, 768)
    with pytest.raises(CheckpointError, match="not part of the official BEiT"):
        unilm_to_maekit({**official, "decoder_pos_embed": torch.zeros(1)})
    bad = dict(official, **{"rel_pos_bias.relative_position_index": relative_position_index((8, 8)).flip(0)})
    with pytest.raises(CheckpointError, match="relative position index of another layout"):
        unilm_to_maekit(bad)


def test_maekit_export_writes_a_beit_that_timm_creates_and_loads(tmp_path, images):
    import json

    import timm

    from maekit.io.checkpoint import load_state_dict
    from maekit.io.export import export_encoder

    model = tiny_beit()
    weights, config_path = export_encoder(model, tmp_path)
    config = json.loads(config_path.read_text())
    timm_beit = timm.create_model(config["architecture"], pretrained=False, num_classes=0, **config["model_args"]).eval()
    timm_beit.load_state_dict(load_state_dict(weights), strict=True)
    with torch.no_grad():
        assert torch.allclose(timm_beit.forward_features(images), model.encode(images), atol=1e-5)


def test_attention_weights_of_a_per_block_table_are_the_ones_its_forward_applies(images):
    model = tiny_beit(rel_pos="per_block")
    tokens = model.tokenize(images)
    found = model.encoder.forward_intermediates(tokens, [0, 1], attention=True)
    block = model.encoder.blocks[0]
    x = block.norm1(found.features[0])
    weights = found.attention[1]
    _, _, v = block.attn.project_qkv(x)
    by_weights = block.attn.proj((weights @ v).transpose(1, 2).reshape(*x.shape))
    assert torch.allclose(by_weights, block.attn(x), atol=1e-5)  # its own table included


def test_pictures_with_the_dall_e_tokenizer_draw_its_own_view(tmp_path, images):
    from maekit_beit.dalle import DallEEncoder
    from maekit_beit.model import beit

    from maekit.io.checkpoint import save_state_dict

    torch.manual_seed(0)
    save_state_dict(DallEEncoder(n_hid=8, vocab_size=32).state_dict(), tmp_path / "dalle.safetensors")
    model = beit(size=None, img_size=32, patch_size=4, encoder=dict(embed_dim=32, depth=1, num_heads=4), num_masking=20,
                 min_block=4, tokenizer=dict(type="dall_e", weights=str(tmp_path / "dalle.safetensors"), n_hid=8,
                                             vocab_size=32))
    rows = model.panels(images, (0.5,) * 3, (0.5,) * 3)
    assert len(rows) == 3 and all(len(row) == 4 and row[1].shape == (32, 32, 3) for row in rows)
    assert model.panel_titles().columns[-1] == "predicted token map"  # DALL-E's encoder has no decoder here
    with pytest.raises(ValueError, match="batch\\['views'\\]\\['tokenizer_view'\\]"):
        model(images)  # training batches must carry the tokenizer's view (the beit_views transform)


def test_beit_convert_command_writes_timm_per_block_and_names_a_bad_option(tmp_path):
    from click.testing import CliRunner

    from maekit.cli.main import main
    from maekit.io.checkpoint import load_state_dict, save_state_dict

    model = tiny_beit()
    save_state_dict(maekit_to_unilm(model.state_dict()), tmp_path / "official.pth", wrap="model")
    out = tmp_path / "timm.safetensors"
    result = CliRunner().invoke(main, ["beit-convert", str(tmp_path / "official.pth"), "--from", "unilm", "--to", "timm",
                                       "--per-block", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert set(load_state_dict(out)) == set(maekit_to_timm_beit(model.state_dict(), per_block=True))
    result = CliRunner().invoke(main, ["beit-convert", str(tmp_path / "official.pth"), "--from", "unilm", "--to", "unilm",
                                       "--per-block", "--out", str(out)])
    assert result.exit_code != 0 and "Error:" in result.output and "--per-block" in result.output
