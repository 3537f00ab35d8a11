"""SkeletonMAE's mechanism against values computed here: MAMP's token layout, joint / frame /
motion-aware masking, the motion target, per-sample noise over bodies, the loss reduction, the
evaluation heads."""
from __future__ import annotations

import pytest
import torch

from maekit.registry import build
from maekit.structures import Mask
from maekit_skeleton.model import (
    FrameMasker,
    JointMasker,
    MotionAwareMasker,
    MotionTarget,
    SkeletonPatchifier,
    SpatioTemporalMasker,
    frame_tokens,
    token_frames,
)

TINY = dict(type="skeleton_mae", num_frames=16, segment=4, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16,
            decoder_depth=1, decoder_num_heads=2)


def batch(n: int = 2, frames: int = 16, bodies: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, frames, 25, bodies, generator=torch.Generator().manual_seed(seed))


def test_tokens_follow_mamps_layout():
    x = batch()
    tokens = SkeletonPatchifier(segment=4)(x)
    assert tokens.values.shape == (4, 4 * 25, 12) and tokens.meta["bodies"] == 2
    # MAMP: (N, C, T, V, M) → (N·M, T, V, C), then (NM, T', u, V, 1, C) → "ntuvpc->ntvupc"
    sequences = x.permute(0, 4, 2, 3, 1).reshape(4, 16, 25, 3)
    reference = torch.einsum("ntuvpc->ntvupc", sequences.reshape(4, 4, 4, 25, 1, 3)).reshape(4, 100, 12)
    torch.testing.assert_close(tokens.values, reference)
    assert tokens.coords[0, 27].tolist() == [1.0, 2.0]  # row t·V + v
    torch.testing.assert_close(token_frames(tokens.values, (4, 25), 4), sequences)
    torch.testing.assert_close(frame_tokens(sequences, 4), tokens.values)
    with pytest.raises(ValueError, match="not a multiple of the segment length 4"):
        SkeletonPatchifier(segment=4)(batch(frames=10))
    with pytest.raises(ValueError, match="25 joints"):
        SkeletonPatchifier()(torch.zeros(1, 3, 8, 20, 1))


def grid_of(mask: Mask, segments: int = 4, joints: int = 25) -> torch.Tensor:
    return mask.masked.reshape(-1, segments, joints).bool()


def test_joint_masking_removes_whole_joints_at_every_time_step():
    tokens = SkeletonPatchifier()(batch())
    mask = JointMasker(mask_ratio=0.4)(tokens)
    removed = grid_of(mask)
    assert (removed.all(dim=1) == removed.any(dim=1)).all()  # a joint is removed at all segments or none
    assert (removed[:, 0].sum(-1) == 10).all() and mask.num_visible == 4 * 15
    noise = torch.rand(4, 25 + 4)
    chosen = JointMasker(0.4)(tokens, noise=noise)
    assert torch.equal(grid_of(chosen)[:, 0], torch.zeros(4, 25, dtype=torch.bool).scatter(1, noise[:, :25].topk(10).indices, True))


def test_frame_masking_removes_whole_segments_and_the_mix_is_their_union():
    tokens = SkeletonPatchifier()(batch())
    removed = grid_of(FrameMasker(mask_ratio=0.5)(tokens))
    assert (removed.all(dim=2) == removed.any(dim=2)).all() and (removed[:, :, 0].sum(-1) == 2).all()
    noise = torch.rand(4, 29)
    union = grid_of(SpatioTemporalMasker(joint_ratio=0.4, frame_ratio=0.5)(tokens, noise=noise))
    joints = grid_of(JointMasker(0.4)(tokens, noise=noise))
    segments = grid_of(FrameMasker(0.5)(tokens, noise=noise))
    assert torch.equal(union, joints | segments)
    assert (union.sum((1, 2)) == 10 * 4 + 2 * 25 - 10 * 2).all()
    with pytest.raises(ValueError, match="remove every token"):
        SpatioTemporalMasker(joint_ratio=0.99, frame_ratio=0.99)(tokens)


def test_motion_aware_masking_is_mamps_gumbel_sampling():
    tokens = SkeletonPatchifier()(batch())
    uniform = torch.rand(4, 100, generator=torch.Generator().manual_seed(3))
    mask = MotionAwareMasker(mask_ratio=0.9, tau=0.8)(tokens, noise=uniform)
    # MAMP's motion_aware_random_masking, written out: |x[t] − x[t−1]| per token, first copies second
    values = tokens.values.reshape(4, 4, 25, 12)
    motion = torch.zeros_like(values)
    motion[:, 1:] = (values[:, 1:] - values[:, :-1]).abs()
    motion[:, 0] = motion[:, 1]
    motion = motion.mean(-1).reshape(4, 100)
    motion = motion / (motion.max(-1, keepdim=True).values * 0.8 + 1e-10)
    score = torch.log(motion.softmax(-1)) - torch.log(-torch.log(uniform + 1e-10) + 1e-10)
    ids_shuffle = torch.argsort(score, dim=1)
    len_keep = int(100 * (1 - 0.9))  # the reference's count: 9, as float rounding has it
    assert torch.equal(mask.ids_keep, ids_shuffle[:, :len_keep])
    # busy tokens are removed more often: over many draws, the busiest joint is masked more than the stillest
    still = batch(1, bodies=1) * 0
    still[0, :, :, 5] = torch.randn(3, 16, 1).cumsum(1) * 3  # joint 5 moves a lot, the others not at all
    moving = SkeletonPatchifier()(still)
    counts = sum(grid_of(MotionAwareMasker(0.5, 0.8)(moving), 4)[0].float() for _ in range(200))
    assert counts[:, 5].mean() > counts[:, 6].mean() + 20


def test_motion_target_is_the_next_frame_difference():
    x = batch()
    tokens = SkeletonPatchifier()(x)
    target = token_frames(MotionTarget()(tokens), (4, 25), 4)
    sequences = x.permute(0, 4, 2, 3, 1).reshape(4, 16, 25, 3)
    torch.testing.assert_close(target[:, :-1], sequences[:, 1:] - sequences[:, :-1])
    assert not target[:, -1].any()
    normalised = MotionTarget(norm=True)(tokens)
    torch.testing.assert_close(normalised.mean(-1), torch.zeros(4, 100), atol=1e-5, rtol=0)


def test_noise_is_per_sample_split_over_its_bodies_and_encode_pools_bodies_together():
    model = build("model", {**TINY, "masker": dict(type="random_mask", mask_ratio=0.75)})
    x = batch(3)
    asked = []

    def per_sample(shape, device):
        asked.append(shape)
        return torch.arange(shape[0] * shape[1], dtype=torch.float32).reshape(shape) % 97 / 97

    mask = model.make_mask(model.tokenize(x), noise=per_sample)
    assert asked == [(3, 2 * 100)]  # one row per sample, as the trainer seeds it
    expected = model.masker(model.tokenize(x), noise=per_sample((3, 200), "cpu").reshape(6, 100))
    assert torch.equal(mask.ids_keep, expected.ids_keep)
    assert model.encode({"inputs": x}).shape == (3, 2 * 100, 32)


def test_loss_ignores_kept_tokens():
    model = build("model", TINY)
    x = batch()
    pred, mask, target = model.reconstruct({"inputs": x})
    changed = torch.where(mask.masked.bool()[..., None], pred, pred + 100.0)
    assert torch.equal(model.loss(pred, target, mask)["loss"], model.loss(changed, target, mask)["loss"])
    assert model.loss(torch.where(mask.masked.bool()[..., None], target, pred), target, mask)["loss"] == 0
    assert model({"inputs": x})["loss"].requires_grad


def test_finetune_head_pools_time_then_bodies_and_trains_through_core(tmp_path):
    from maekit.engine import load_config
    from maekit.eval.finetune import finetune_config, run_finetune

    classifier = build("model", dict(type="skeleton_classifier", model=TINY, num_classes=5, hidden_dim=8)).eval()
    logits = classifier.classify({"inputs": batch(3)})
    assert logits.shape == (3, 5)
    swapped = classifier.classify({"inputs": batch(3).flip(-1)})  # bodies in the other order: same mean
    torch.testing.assert_close(logits, swapped, atol=1e-5, rtol=1e-4)
    cfg = load_config("skeleton_mae_demo")
    cfg.merge_from_dict({"model.depth": 1, "model.decoder_depth": 1, "finetune.schedule.max_iters": 2,
                         "finetune.schedule.warmup_iters": 0, "finetune.data.batch_size": 4})
    assert finetune_config(cfg, None).model.type == "skeleton_classifier"
    metrics = run_finetune(cfg, None, tmp_path / "ft", device="cpu")
    assert 0 <= metrics["top1_accuracy"] <= 1 and metrics["final_loss"] == metrics["final_loss"]


def test_linear_head_learns_separable_features():
    from maekit_skeleton.evaluate import train_linear_head

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=generator)
    features = torch.randn(300, 8, generator=generator) + 4 * torch.nn.functional.one_hot(labels, 8).float()
    head = train_linear_head(features[:200].numpy(), labels[:200].numpy(), 3, epochs=20)
    accuracy = (head(features[200:]).argmax(1) == labels[200:]).float().mean()
    assert accuracy > 0.95
    assert not head[0].affine  # MAMP's BatchNorm without affine parameters
