"""Edge-MAE, MT-Net, the 3-D seed and the synthesis metrics against independent computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from maekit.registry import build
from maekit.structures import Mask
from maekit_mri.edge import EdgeMAELoss, neighbourhood_weights, sobel_magnitude
from maekit_mri.mim3d import patchify_volume, unpatchify_volume
from maekit_mri.synthesis import evaluate_synthesis, nmse, psnr, ssim

TINY_EDGE = dict(type="edge_mae", img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16,
                 decoder_depth=1, decoder_num_heads=2)


def test_sobel_of_a_step_image():
    image = torch.zeros(1, 1, 6, 8)
    image[..., 4:] = 0.1  # a vertical step of 0.1 between columns 3 and 4
    edges = sobel_magnitude(image)[0, 0].numpy()
    # the 3×3 Sobel sees the step from the two columns beside it: (1 + 2 + 1) · 0.1 = 0.4
    expected = np.zeros((6, 8))
    expected[:, 3:5] = 0.4
    np.testing.assert_allclose(edges, expected, atol=1e-6)
    # independently on a random image: scipy's Sobel with replicated borders, magnitude clipped at 1
    rng = np.random.default_rng(0)
    noisy = rng.random((9, 11)).astype(np.float32)
    magnitude = np.hypot(ndimage.sobel(noisy, axis=0, mode="nearest"), ndimage.sobel(noisy, axis=1, mode="nearest"))
    np.testing.assert_allclose(sobel_magnitude(torch.from_numpy(noisy)[None, None])[0, 0].numpy(),
                               np.minimum(magnitude, 1.0), atol=1e-5)


def test_patch_wise_weights_for_hand_made_masks():
    masked = torch.zeros(1, 16)
    masked[0, 5] = 1  # token (1, 1) of a 4×4 grid
    weights = neighbourhood_weights(masked, (4, 4)).view(4, 4)
    expected = torch.ones(4, 4)
    expected[0:3, 0:3] += 1 / 9  # every token whose 3×3 neighbourhood holds (1, 1)
    torch.testing.assert_close(weights, expected)
    corner = neighbourhood_weights(torch.ones(1, 16), (4, 4)).view(4, 4)
    assert corner[0, 0] == pytest.approx(1 + 4 / 9) and corner[0, 1] == pytest.approx(1 + 6 / 9)  # padding counts as 0
    assert corner[1, 1] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="mask has 16 tokens, the 3×3 grid 9"):
        neighbourhood_weights(torch.ones(1, 16), (3, 3))


def test_loss_ignores_kept_patches_and_weights_as_the_reference():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 16, 8, requires_grad=True), torch.rand(2, 16, 8)
    masked = (torch.rand(2, 16) < 0.6).float()
    mask = Mask(ids_keep=torch.zeros(2, 1, dtype=torch.long), ids_restore=torch.zeros(2, 16, dtype=torch.long), masked=masked)
    losses = EdgeMAELoss(grid_size=4)(pred, target, mask)
    losses["loss"].backward()
    assert (pred.grad.abs().sum(-1)[masked == 0] == 0).all() and (pred.grad.abs().sum(-1)[masked == 1] > 0).all()
    weights = neighbourhood_weights(masked, (4, 4))
    error = (pred.detach() - target) ** 2
    rec = ((error[..., :4] * weights[..., None]).mean(-1) * masked).sum() / masked.sum()
    edge = ((error[..., 4:] * weights[..., None]).mean(-1) * masked).sum() / masked.sum()
    torch.testing.assert_close(losses["loss_reconstruction"], rec)
    torch.testing.assert_close(losses["loss_edges"], edge)
    torch.testing.assert_close(losses["loss"], 10 * rec + edge)
    plain = EdgeMAELoss(grid_size=4, patch_wise=False)(pred.detach(), target, mask)
    torch.testing.assert_close(plain["loss_reconstruction"], (error[..., :4].mean(-1) * masked).sum() / masked.sum())
    torch.testing.assert_close(plain["loss_edges"], edge)  # the edge loss is always weighted


def test_edge_mae_targets_pixels_and_edges_of_the_unmasked_image_and_sees_30_percent():
    model = build("model", TINY_EDGE)
    images = torch.rand(2, 1, 16, 16)
    tokens = model.tokenize(images)
    target = model.make_target(tokens, None)
    assert target.shape == (2, 16, 32)
    torch.testing.assert_close(target[1, 6, :16], images[1, 0, 4:8, 8:12].reshape(-1))
    torch.testing.assert_close(target[1, 6, 16:], sobel_magnitude(images)[1, 0, 4:8, 8:12].reshape(-1))
    seen = []
    model.encoder.blocks.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[1]))
    pred, mask, _ = model.reconstruct(images)
    assert seen == [1 + 4] and mask.num_visible == int(16 * 0.3)  # cls + int(N(1 − 0.7))
    assert pred.min() >= 0 and pred.max() <= 1  # sigmoid heads
    with pytest.raises(ValueError, match="1 channels"):
        model({"inputs": torch.rand(2, 3, 16, 16)})


def tiny_mtnet(pretrained=None, **options):
    spec = dict(type="mri_mtnet", encoder=TINY_EDGE, pretrained=pretrained, skip_layers=(0, 1, 2), dim=16, num_heads=2,
                consistency_layers=2)
    spec.update(options)
    return build("model", spec)


def test_dual_scale_selective_fusion_against_its_definition():
    torch.manual_seed(0)
    fusion = tiny_mtnet().fusions[0]
    fine, coarse, decoder = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 4, 4), torch.randn(2, 16, 8, 8)
    up = torch.nn.functional.conv_transpose2d(coarse, fusion.upsample.weight, fusion.upsample.bias, stride=2, groups=16)
    gated_fine = fine * torch.sigmoid(fusion.gate_fine(torch.cat([fine, decoder], 1)))
    gated_coarse = up * torch.sigmoid(fusion.gate_coarse(torch.cat([up, decoder], 1)))
    logits = fusion.select(((gated_fine + gated_coarse).mean((2, 3)))).view(2, 2, 16)
    weights = logits.softmax(1)
    assert torch.allclose(weights.sum(1), torch.ones(2, 16))
    expected = weights[:, 0, :, None, None] * gated_fine + weights[:, 1, :, None, None] * gated_coarse
    torch.testing.assert_close(fusion(fine, coarse, decoder), expected)


def test_mtnet_loss_is_weighted_l1_plus_the_frozen_encoders_feature_consistency(tmp_path):
    # a pre-trained Edge-MAE checkpoint; MT-Net starts from its encoder and judges with a frozen copy
    from maekit.engine import load_config, train

    cfg = load_config("edge_mae_demo")
    cfg.merge_from_dict({"model": TINY_EDGE, "schedule.max_iters": 1, "schedule.warmup_iters": 0,
                         "checkpoint_interval": 1, "data.dataset.size": 16, "data.batch_size": 4})
    runner = train(cfg, tmp_path, device="cpu")
    pretrained = runner.model.model.encoder.state_dict()
    model = tiny_mtnet(pretrained=str(tmp_path / "iter_1.pth"))
    for name, value in pretrained.items():
        torch.testing.assert_close(model.encoder.state_dict()[name], value)
        torch.testing.assert_close(model.judge.state_dict()[name], value)
    source, target = torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16)
    losses = model({"inputs": source, "target": target})
    pred = model.synthesize(source)
    assert pred.shape == (3, 1, 16, 16)
    l1 = (pred - target).abs().mean()
    states_pred = model.judge.hidden_states(model.patchifier(pred))
    states_target = model.judge.hidden_states(model.patchifier(target))
    assert len(states_pred) == 1 + 2  # the embedding, then each block
    consistency = sum((a - b).abs().mean() for a, b in zip(states_pred[1:3], states_target[1:3]))
    torch.testing.assert_close(losses["loss_l1"], l1)
    torch.testing.assert_close(losses["loss_consistency"], consistency)
    torch.testing.assert_close(losses["loss"], 10000 * l1 + consistency)
    losses["loss"].backward()
    assert all(p.grad is None for p in model.judge.parameters())  # the judge never learns
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0  # the encoder is fine-tuned
    model.train()
    assert not model.judge.training
    with pytest.raises(ValueError, match="needs 'target'"):
        model({"inputs": source})


def test_volume_patches_round_trip_and_layout():
    volumes = torch.randn(2, 1, 8, 12, 4)
    values = patchify_volume(volumes, (4, 4, 2))
    assert values.shape == (2, 2 * 3 * 2, 32)
    torch.testing.assert_close(values[0, 0], volumes[0, 0, :4, :4, :2].reshape(-1))  # (p, q, r) order
    torch.testing.assert_close(values[1, 9], volumes[1, 0, 4:8, 4:8, 2:4].reshape(-1))  # depth 1, row 1, column 1: 6 + 2 + 1
    torch.testing.assert_close(unpatchify_volume(values, (2, 3, 2), (4, 4, 2)), volumes)


def test_mim3d_masks_most_of_a_volume_and_predicts_raw_voxels():
    model = build("model", dict(type="mri_mim3d", img_size=16, patch_size=4, mask_ratio=0.75, embed_dim=24, depth=1,
                                num_heads=2, decoder_embed_dim=12, decoder_depth=1, decoder_num_heads=2))
    volumes = torch.rand(2, 1, 16, 16, 16)
    tokens = model.tokenize(volumes)
    assert tokens.num_tokens == 64 and tokens.coords.shape == (2, 64, 3)
    pred, mask, target = model.reconstruct({"inputs": volumes})
    assert mask.num_visible == 16 and pred.shape == target.shape == (2, 64, 64)
    torch.testing.assert_close(target, tokens.values)  # raw voxels, no per-patch normalisation
    assert torch.isfinite(model({"inputs": volumes})["loss"])


def test_synthesis_metrics_per_subject_and_written_volumes(tmp_path):
    import nibabel
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    target = rng.random((16, 16))
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    assert psnr(pred, target) == pytest.approx(20 * np.log10(1 / np.sqrt(np.mean((pred - target) ** 2))))
    assert nmse(pred, target) == pytest.approx(np.sum((pred - target) ** 2) / np.sum(target ** 2))
    assert ssim(pred, target) == pytest.approx(structural_similarity(target, pred, data_range=1.0))

    class Echo(torch.nn.Module):  # "synthesises" its input: metrics are then the source/target ones
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))

        def synthesize(self, source):
            return source

    pairs = [{"inputs": torch.rand(1, 8, 8), "target": torch.rand(1, 8, 8), "subject": subject, "slice": k, "label": -1}
             for subject in ("a", "b") for k in range(3)]
    summary = evaluate_synthesis(Echo(), pairs, tmp_path / "out", batch_size=4)
    per_subject = {s: np.mean([psnr(p["inputs"][0].numpy(), p["target"][0].numpy()) for p in pairs if p["subject"] == s])
                   for s in ("a", "b")}
    assert summary["per_subject"]["a"]["psnr"] == pytest.approx(per_subject["a"])
    assert summary["psnr_mean"] == pytest.approx(np.mean(list(per_subject.values())))
    assert summary["psnr_std"] == pytest.approx(np.std(list(per_subject.values())))
    written = nibabel.load(str(tmp_path / "out" / "b_synthesised.nii.gz")).get_fdata()
    assert written.shape == (8, 8, 3)
    np.testing.assert_allclose(written[..., 2], pairs[5]["inputs"][0].numpy(), rtol=1e-6)
