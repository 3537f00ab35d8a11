"""Core's token-prediction concepts: the tokenizer contract and its fitting, ids as targets, the
cross-entropy reductions of BEiT and iGPT, independent Bernoulli masking, a bias-free zero-started
vocabulary head, masked cross-attention with a shared norm, and probing an intermediate layer."""
from __future__ import annotations

import pytest
import torch

from maekit.methods.mae import mae
from maekit.nn.attention import CrossAttentionBlock
from maekit.nn.decoder import LinearHead
from maekit.nn.losses import MaskedCrossEntropyLoss
from maekit.nn.masking import BernoulliMasker
from maekit.nn.targets import TokenTarget
from maekit.nn.tokenizers import Tokenizer, fit_tokenizers, share_fitted_tokenizers, tokenizers_in
from maekit.structures import Mask, Tokens


class Thresholds(Tokenizer):
    """A toy trainable tokenizer: id = how many fitted thresholds a pixel's mean exceeds, per 2×2 cell."""

    def __init__(self) -> None:
        super().__init__()
        self.vocab_size, self.fit_samples = 3, 5
        self.register_buffer("cuts", torch.zeros(2))
        self.register_buffer("done", torch.zeros((), dtype=torch.bool))
        self.seen = 0

    @property
    def fitted(self) -> bool:
        return bool(self.done)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return height // 2, width // 2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        cells = torch.nn.functional.avg_pool2d(images.mean(1, keepdim=True), 2)[:, 0]
        return (cells[..., None] > self.cuts).sum(-1)

    def fit(self, images, seed: int = 0) -> None:
        pixels = torch.cat([batch.flatten() for batch in images])
        self.seen = len(pixels) // 16
        self.cuts.copy_(torch.quantile(pixels, torch.tensor([1 / 3, 2 / 3])))
        self.done.fill_(True)


def batches(count: int = 3, size: int = 4) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    return [{"inputs": torch.rand(size, 1, 4, 4, generator=generator)} for _ in range(count)]


def test_fit_tokenizers_fits_each_unfitted_one_once_on_at_most_fit_samples_images():
    model = torch.nn.ModuleDict({"target": TokenTarget(Thresholds()), "other": torch.nn.Linear(1, 1)})
    tokenizer = model["target"].tokenizer
    assert [name for name, _ in tokenizers_in(model)] == ["target.tokenizer"]
    with pytest.raises(ValueError, match="has not been fitted"):
        tokenizer.encode(torch.rand(1, 1, 4, 4))
    assert fit_tokenizers(model, batches()) == ["target.tokenizer"]
    assert tokenizer.fitted and tokenizer.seen == 5  # 4 images of the first batch, 1 of the second
    assert fit_tokenizers(model, batches()) == []  # fitted already: a resumed run does not refit
    untrained = torch.nn.ModuleDict({"target": TokenTarget(Thresholds())})
    assert share_fitted_tokenizers(model, untrained) == ["target.tokenizer"]
    assert torch.equal(untrained["target"].tokenizer.cuts, tokenizer.cuts)
    with pytest.raises(ValueError, match=r"batch\['inputs'\].*gives images"):
        fit_tokenizers(torch.nn.ModuleDict({"t": Thresholds()}), [{"images": torch.rand(1, 1, 4, 4)}])


def test_token_target_reads_the_tokenizer_or_the_tokens_own_ids():
    tokenizer = Thresholds()
    fit_tokenizers(tokenizer, batches())
    images = torch.rand(2, 1, 4, 4)
    tokens = Tokens(values=torch.zeros(2, 4, 16), coords=torch.zeros(2, 4, 2))
    ids = TokenTarget(tokenizer)(tokens, {"inputs": images})
    assert ids.shape == (2, 4) and torch.equal(ids, tokenizer.encode(images).flatten(1))
    with pytest.raises(ValueError, match="grids must match"):
        TokenTarget(tokenizer)(Tokens(values=torch.zeros(2, 9, 16), coords=torch.zeros(2, 9, 2)), {"inputs": images})
    own = Tokens(values=torch.randint(0, 5, (2, 4, 1)), coords=torch.zeros(2, 4, 2))
    assert torch.equal(TokenTarget()(own, None), own.values[..., 0])
    with pytest.raises(ValueError, match="give a tokenizer"):
        TokenTarget()(tokens, None)
    # a tokenizer's own view among the named views (BEiT's 112-px tokenizer view)
    tokenizer.view = "small"
    named = {"inputs": torch.zeros(2, 1, 8, 8), "views": {"image": torch.zeros(2, 1, 8, 8), "small": images}}
    assert torch.equal(TokenTarget(tokenizer)(tokens, named), ids)
    with pytest.raises(ValueError, match=r"batch\['views'\]\['small'\].*holds inputs"):
        TokenTarget(tokenizer)(tokens, {"inputs": images})


def test_cross_entropy_token_mean_and_image_mean_against_direct_sums():
    generator = torch.Generator().manual_seed(0)
    logits, ids = torch.randn(3, 5, 7, generator=generator), torch.randint(0, 7, (3, 5), generator=generator)
    masked = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    mask = Mask.from_masked(masked)
    per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten(), reduction="none").view(3, 5)
    token_mean = MaskedCrossEntropyLoss(reduction="token_mean")(logits, ids, mask)
    assert torch.allclose(token_mean["loss"], per_token[masked].mean())  # BEiT: every hidden token of the batch
    image_mean = MaskedCrossEntropyLoss(reduction="image_mean", weight=2.0)(logits, ids, mask)
    expected = (per_token[0, :1].mean() + per_token[1, :3].mean()) / 2  # iGPT: per image; image 3 hides nothing
    assert torch.allclose(image_mean["cross_entropy"], expected) and torch.allclose(image_mean["loss"], 2 * expected)
    everything = MaskedCrossEntropyLoss(over="all")(logits, ids, mask)
    assert torch.allclose(everything["loss"], per_token.mean())
    correct = (logits.argmax(-1) == ids).float()
    assert torch.allclose(everything["cross_entropy_accuracy"], correct.mean())
    with pytest.raises(ValueError, match="reduction"):
        MaskedCrossEntropyLoss(reduction="mean")


def test_bernoulli_masking_removes_tokens_independently_at_the_rate():
    tokens = Tokens(values=torch.zeros(400, 50, 3), coords=torch.zeros(400, 50, 2))
    mask = BernoulliMasker(0.15)(tokens, noise=torch.rand(400, 50, generator=torch.Generator().manual_seed(1)))
    rate = float(mask.masked.mean())
    assert abs(rate - 0.15) < 4 * (0.15 * 0.85 / 20000) ** 0.5 and mask.variable_count
    counts = mask.masked.sum(1)  # per-image counts spread as Binomial(50, 0.15): variance ≈ 6.4
    assert 4.0 < float(counts.float().var()) < 9.5
    noise, pair = torch.rand(2, 50), Tokens(torch.zeros(2, 50, 3), torch.zeros(2, 50, 2))
    assert torch.equal(BernoulliMasker(0.3)(pair, noise=noise).masked.bool(), noise < 0.3)  # removed iff u < p
    assert not BernoulliMasker(0.0)(tokens).masked.any()
    with pytest.raises(ValueError, match="probability"):
        BernoulliMasker(1.0)


def test_vocabulary_head_without_bias_starts_at_zero():
    head = LinearHead(8, 11, num_prefix_tokens=0, std=0.0, bias=False)
    assert head.pred.bias is None and not head.pred.weight.any()
    tokens = Tokens(values=torch.zeros(2, 3, 4), coords=torch.zeros(2, 3, 2))
    assert head(torch.randn(2, 3, 8), Mask.keep_all(2, 3), tokens).shape == (2, 3, 11)


def test_vocabulary_head_at_removed_positions_computes_only_their_rows():
    torch.manual_seed(0)
    every, removed_only = LinearHead(8, 11), LinearHead(8, 11, positions="removed")
    removed_only.load_state_dict(every.state_dict())
    tokens = Tokens(values=torch.zeros(2, 5, 4), coords=torch.zeros(2, 5, 2))
    mask = Mask.from_masked(torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0]]))  # counts differ per row
    latents = torch.randn(2, 6, 8)
    full, sparse = every(latents, mask, tokens), removed_only(latents, mask, tokens)
    removed = mask.masked.bool()
    assert torch.allclose(sparse[removed], full[removed]) and not sparse[~removed].any()
    with pytest.raises(ValueError, match="'all' or 'removed'"):
        LinearHead(8, 11, positions="masked")


def test_cross_attention_with_a_shared_norm_and_a_mask_is_the_written_out_formula():
    torch.manual_seed(0)
    block = CrossAttentionBlock(8, 2, order=("cross", "mlp"), shared_norm=True).eval()
    queries, context = torch.randn(2, 4, 8), torch.randn(2, 5, 8)
    allowed = torch.rand(2, 1, 4, 5) > 0.4
    allowed[..., 0] = True
    attn = block.cross_attn
    q = attn.query(block.norm_query(queries)).view(2, 4, 2, 4).transpose(1, 2)
    k, v = attn.key_value(block.norm_query(context)).view(2, 5, 2, 2, 4).permute(2, 0, 3, 1, 4)
    scores = (q @ k.transpose(-1, -2) / 2.0).masked_fill(~allowed, float("-inf"))
    mixed = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 4, 8))
    x = queries + mixed
    expected = x + block.mlp(block.norm2(x))
    assert torch.allclose(block(queries, context, allowed), expected, atol=1e-5)
    with pytest.raises(ValueError, match="shared_norm"):
        CrossAttentionBlock(8, 2, context_dim=6, shared_norm=True)


def test_probing_a_layer_reads_that_blocks_layer_normed_output():
    from maekit.data.bundled import DigitsDataset
    from maekit.eval.probe import pooled_features

    torch.manual_seed(0)
    model = mae(size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1,
                encoder=dict(embed_dim=32, depth=3, num_heads=2), decoder_embed_dim=16, decoder_depth=1,
                decoder_num_heads=2).eval()
    images = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        state = model.encoder.forward_intermediates(model.tokenize(images), [2]).features[2]
        assert torch.allclose(model.encode_layer(images, 2), torch.nn.functional.layer_norm(state, (32,)), atol=1e-6)
        assert torch.allclose(model.encode_layer(images, -2), model.encode_layer(images, 2))
    dataset = DigitsDataset(split="test", size=16, channels=1)
    features, labels = pooled_features(model, torch.utils.data.Subset(dataset, range(6)), pools=("mean", "cls"), layer=1)
    with torch.no_grad():
        first = model.encode_layer(torch.stack([dataset[i]["inputs"] for i in range(6)]), 1)
    assert torch.allclose(torch.from_numpy(features["mean"]), first[:, 1:].mean(1), atol=1e-5)
    with pytest.raises(ValueError, match="probe layer 4 is outside"):
        model.encode_layer(images, 4)


def test_a_method_that_encodes_in_its_own_way_refuses_a_probe_layer():
    model = mae(size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=1,
                encoder=dict(embed_dim=32, depth=1, num_heads=2), decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    # e.g. MeshMAE fills padding, SkeletonMAE splits bodies: a layer read past that would be wrong
    model.__class__ = type("OwnEncode", (type(model),), {"encode": lambda self, batch, mask=None: self.encoder(self.tokenize(batch))})
    with pytest.raises(ValueError, match="encodes its inputs in its own way"):
        model.encode_layer(torch.zeros(1, 1, 16, 16), 1)


def test_a_tokenizer_of_captions_is_fitted_from_lists_of_strings_in_the_batches():
    class Words(Tokenizer):
        view, vocab_size = "caption", 4

        def __init__(self) -> None:
            super().__init__()
            self.words: list[str] = []

        @property
        def fitted(self) -> bool:
            return bool(self.words)

        def fit(self, batches, seed: int = 0) -> None:
            self.words = sorted({word for batch in batches for text in batch for word in text.split()})

    words = Words()
    assert fit_tokenizers(words, [{"caption": ["a cat", "a dog"]}, {"views": {"caption": ["two cats"]}}]) == [""]
    assert words.words == ["a", "cat", "cats", "dog", "two"]
