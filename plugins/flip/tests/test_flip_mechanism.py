"""FLIP's mechanism against values computed independently in the tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maekit_flip.loss import ContrastiveLoss
from maekit_flip.tokenizer import open_clip_tokenizer, resolve_tokenizer, tokenize
from maekit_flip.towers import ImageProjection, keep_text_tokens


def tiny_flip(mask_ratio: float = 0.5, **options):
    from maekit.registry import build

    spec = dict(type="flip", img_size=32, patch_size=4, encoder=dict(embed_dim=32, depth=2, num_heads=4),
                embed_dim=16, mask_ratio=mask_ratio, text=dict(width=32, depth=1, num_heads=4))
    spec.update(options)
    return build("model", spec)


def captions(n: int) -> torch.Tensor:
    return open_clip_tokenizer()([f"a photo of the number {i}" for i in range(n)])


def test_masked_and_unmasked_paths_agree_at_mask_ratio_zero():
    for pool in ("mean", "cls"):
        torch.manual_seed(0)
        model = tiny_flip(mask_ratio=0.0, pool=pool).eval()
        images = torch.randn(3, 3, 32, 32)
        tokens = model.tokenize(images)
        mask = model.make_mask(tokens, torch.rand(3, tokens.num_tokens))  # shuffles, removes nothing
        assert mask.num_visible == tokens.num_tokens == 64
        through_training_path = model.decode(model.encoder(model.encoder_input(images, tokens, mask)), mask, tokens)
        torch.testing.assert_close(through_training_path, model.encode_image(images), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ratio,expected", [(0.5, 32), (0.75, 16), (0.3, 44)])
def test_image_tower_sees_exactly_int_n_times_one_minus_r_patches(ratio, expected):
    assert expected == int(64 * (1 - ratio))
    model = tiny_flip(mask_ratio=ratio)
    seen = []
    model.encoder.blocks[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape[1]))
    losses = model({"inputs": torch.randn(4, 3, 32, 32), "text": captions(4)})
    assert seen == [1 + expected]  # cls + visible patches
    assert torch.isfinite(losses["loss"])


def test_contrastive_loss_equals_an_independent_symmetric_cross_entropy():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(5, 8)); image /= np.linalg.norm(image, axis=1, keepdims=True)
    text = rng.normal(size=(5, 8)); text /= np.linalg.norm(text, axis=1, keepdims=True)
    scale = 1 / 0.07
    logits = scale * image @ text.T

    def cross_entropy_of_diagonal(matrix: np.ndarray) -> float:
        log_softmax = matrix - np.log(np.exp(matrix - matrix.max(1, keepdims=True)).sum(1, keepdims=True)) - matrix.max(1, keepdims=True)
        return float(-np.mean(np.diag(log_softmax)))

    expected = (cross_entropy_of_diagonal(logits) + cross_entropy_of_diagonal(logits.T)) / 2
    loss = ContrastiveLoss()
    out = loss(torch.tensor(image, dtype=torch.float64), torch.tensor(text, dtype=torch.float64))
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert loss.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert out["image_to_text_accuracy"].item() == pytest.approx(np.mean(logits.argmax(1) == np.arange(5)))


def test_logit_scale_is_clamped_to_zero_and_log_100():
    loss = ContrastiveLoss()
    with torch.no_grad():
        loss.logit_scale.fill_(7.0)
    assert loss.scale().item() == pytest.approx(100.0)
    image = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    loss(image, image)["loss"].backward()
    assert loss.logit_scale.grad.item() == 0.0  # clamped: the parameter gets no push further out
    with torch.no_grad():
        loss.logit_scale.fill_(-3.0)
    assert loss.scale().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one shape"):
        loss(torch.randn(4, 6), torch.randn(3, 6))


def test_open_clip_tokenizer_round_trip_and_truncation_rule():
    tokenizer = open_clip_tokenizer()
    ids = tokenizer(["A Photo of   the number SEVEN."])[0]
    start, end = tokenizer.encoder["<start_of_text>"], tokenizer.encoder["<end_of_text>"]
    assert ids.shape == (77,) and ids[0] == start == 49406 and end == 49407 and len(tokenizer.encoder) == 49408
    length = int((ids != 0).sum())
    assert ids[length - 1] == end and (ids[length:] == 0).all()  # zero padding after end-of-text
    assert tokenizer.decode(ids[1:length - 1].tolist()).strip() == "a photo of the number seven ."
    long = tokenizer(["word " * 200])[0]
    assert long.shape == (77,) and long[0] == start and long[-1] == end and (long != 0).all()  # cut, end forced last


def test_any_tokenizer_with_the_call_signature_is_accepted_and_bad_output_is_named():
    def by_length(texts):
        return torch.tensor([[49406, len(t), 49407] + [0] * 74 for t in texts])

    assert resolve_tokenizer(by_length) is by_length
    assert tokenize(by_length, ["abc", "de"]).tolist()[1][:3] == [49406, 2, 49407]
    with pytest.raises(ValueError, match="tokenizer returned \\(1, 77\\) for 2 texts"):
        tokenize(lambda texts: torch.zeros(1, 77, dtype=torch.long), ["a", "b"])
    with pytest.raises(ValueError, match="the text tower takes 77"):
        tokenize(lambda texts: torch.zeros(len(texts), 16, dtype=torch.long), ["a"], context_length=77)
    with pytest.raises(ValueError, match="tokenizer must be"):
        resolve_tokenizer("bert")


def test_text_masking_keeps_end_of_text_in_order_and_drops_padding_first():
    ids = torch.tensor([[49406, 320, 1125, 539, 49407, 0, 0, 0]])
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.95, 0.05, 0.3, 0.4]])
    kept = keep_text_tokens(ids, 4, scores, padding_first=False)
    assert kept.tolist() == [[1, 3, 4, 5]]  # end-of-text kept despite its high score; ascending order
    kept = keep_text_tokens(ids, 4, scores, padding_first=True)
    assert kept.tolist() == [[1, 2, 3, 4]]  # real tokens before any padding
    model = tiny_flip(text=dict(width=32, depth=1, num_heads=4, mask_ratio=0.5, mask_type="padding_first"))
    seen = []
    model.target.blocks[0].register_forward_hook(lambda module, args, out: seen.append(args[0].shape[1]))
    model.train()({"inputs": torch.randn(2, 3, 32, 32), "text": captions(2)})
    model.eval().encode_text(captions(2))
    assert seen == [int(77 * 0.5), 77]  # masked in training only


def test_image_projection_pools_cls_or_the_mean_of_patch_tokens():
    latents = torch.randn(2, 5, 8)
    for pool, pooled in (("cls", latents[:, 0]), ("mean", latents[:, 1:].mean(1))):
        head = ImageProjection(8, 4, pool=pool)
        expected = pooled @ head.proj.weight.t()
        torch.testing.assert_close(head(latents), expected / expected.norm(dim=-1, keepdim=True))
    with pytest.raises(ValueError, match="'cls' or 'mean'"):
        ImageProjection(8, 4, pool="max")


def test_reconstruction_ablation_adds_a_weighted_masked_pixel_term():
    torch.manual_seed(0)
    model = tiny_flip(reconstruction=dict(weight=0.5, embed_dim=16, depth=1, num_heads=2))
    batch, noise = {"inputs": torch.randn(2, 3, 32, 32), "text": captions(2)}, torch.rand(2, 64)
    losses = model(batch, noise=noise)
    assert losses["loss"].item() == pytest.approx(losses["loss_contrastive"].item() + 0.5 * losses["loss_reconstruction"].item(), rel=1e-5)
    assert "loss_reconstruction" not in tiny_flip()(batch, noise=noise)  # off by default
    with pytest.raises(ValueError, match="unknown keys"):
        tiny_flip(reconstruction=dict(wieght=1.0))


def test_open_clip_weights_load_and_give_the_same_embeddings_and_convert_back():
    from open_clip.model import CLIP

    from maekit_flip.interop import flip_from_open_clip, maekit_to_open_clip

    torch.manual_seed(0)
    reference = CLIP(embed_dim=24, vision_cfg=dict(image_size=32, patch_size=8, width=48, layers=2, head_width=16),
                     text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=4, layers=2)).eval()
    model = flip_from_open_clip(reference).eval()
    images, ids = torch.randn(3, 3, 32, 32), captions(3)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), reference.encode_image(images, normalize=True), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.encode_text(ids), reference.encode_text(ids, normalize=True), atol=1e-5, rtol=1e-5)
    back = maekit_to_open_clip(model.state_dict())
    original = reference.state_dict()
    assert set(back) == set(original) and all(torch.equal(back[k], original[k]) for k in original)
    with torch.no_grad():  # and a maekit-trained change shows up on the open_clip side
        model.loss.logit_scale.fill_(1.5)
    reference.load_state_dict(maekit_to_open_clip(model.state_dict()))
    assert reference.logit_scale.item() == 1.5


def _two_process_loss(rank: int, port: int, image: torch.Tensor, text: torch.Tensor, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        half = len(image) // 2
        local_image = image[rank * half:(rank + 1) * half].clone().requires_grad_(True)
        out = ContrastiveLoss()(local_image, text[rank * half:(rank + 1) * half])
        out["loss"].backward()
        results[rank] = (out["loss"].item(), local_image.grad.clone())
    finally:
        dist.destroy_process_group()


def test_two_processes_compute_the_global_batch_loss_with_local_gradients():
    import torch.multiprocessing as mp

    from maekit.authoring.testing import free_port

    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(6, 5), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(6, 5), dim=-1)
    whole = image.clone().requires_grad_(True)
    expected = ContrastiveLoss()(whole, text)["loss"]
    expected.backward()
    results = mp.Manager().dict()
    mp.spawn(_two_process_loss, args=(free_port(), image, text, results), nprocs=2, join=True)
    for rank in range(2):
        loss, grad = results[rank]
        assert loss == pytest.approx(expected.item(), rel=1e-6)  # every rank: the loss over all 6 pairs
        # its own rows' gradient of that global loss (open_clip's gather without grad for the others)
        torch.testing.assert_close(grad, whole.grad[rank * 3:(rank + 1) * 3])
