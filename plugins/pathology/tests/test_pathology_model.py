"""MMAE's mechanism against independent computations: the Dirichlet token budget, the per-modality
patchify and embeddings, the targets, the loss on removed tokens only, SD-MAE's term, and RGB-only
fine-tuning."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maekit.registry import build
from maekit_pathology.model import DirichletBudgetMasker, MultiModalLoss, mmae, split_budget

RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def tiny(**options):
    spec = dict(type="mmae", img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2, num_visible=12,
                decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    spec.update(options)
    return build("model", spec)


def test_budget_split_is_exact_per_sample_and_rounds_the_largest_remainders():
    shares = torch.tensor([[0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.34, 0.33, 0.33], [1.0, 0.0, 0.0]])
    counts = split_budget(shares, 98, capacity=64)
    assert counts.sum(1).tolist() == [98] * 4
    assert counts[0].tolist() == [49, 29, 20]  # 49, 29.4, 19.6: the 0.6 remainder gets the spare token
    assert counts[2].tolist() == [33, 33, 32]  # 33.32, 32.34, 32.34: one of the .34 remainders rounds up
    assert counts[3].tolist() == [64, 17, 17]  # the capacity caps a modality; the rest is shared out
    rng = np.random.default_rng(0)
    random_shares = torch.from_numpy(rng.dirichlet([1.0, 1.0, 1.0], size=500))
    counts = split_budget(random_shares, 98, capacity=196)
    assert (counts.sum(1) == 98).all()
    assert ((counts - random_shares * 98).abs() < 1).all()  # within one token of the exact share


def test_masker_keeps_the_budget_split_by_dirichlet_and_the_lowest_noise_tokens_per_modality():
    model = tiny()
    tokens = model.tokenize(torch.randn(64, 5, 16, 16))
    assert tokens.num_tokens == 48 and tokens.meta["tokens_per_modality"] == 16
    noise = torch.rand(64, 49)
    mask = model.make_mask(tokens, noise)
    assert mask.ids_keep.shape == (64, 12)
    assert (mask.masked.sum(1) == 36).all()  # exactly the budget visible in every sample
    # independently: the sample's Dirichlet draw seeded by the last noise column, split, lowest noise kept
    for sample in range(64):
        seed = int(noise[sample, -1].double() * 2**53)
        shares = torch.from_numpy(np.random.default_rng(seed).dirichlet([1.0, 1.0, 1.0]))[None]
        counts = split_budget(shares, 12, 16)[0]
        kept = 1 - mask.masked[sample].view(3, 16)
        assert kept.sum(1).long().tolist() == counts.tolist()
        for m in range(3):
            lowest = noise[sample, m * 16:(m + 1) * 16].argsort()[: int(counts[m])]
            assert set(torch.nonzero(kept[m]).flatten().tolist()) == set(lowest.tolist())
    assert torch.equal(model.make_mask(tokens, noise).ids_keep, mask.ids_keep)  # reproducible from the noise
    per_modality = (1 - mask.masked).view(64, 3, 16).sum(2)
    assert per_modality.std(0).min() > 1  # the split varies from sample to sample


def test_alphas_bias_the_split_toward_a_modality():
    masker = DirichletBudgetMasker(num_visible=12, alphas=(8.0, 1.0, 1.0))
    tokens = tiny().tokenize(torch.randn(400, 5, 16, 16))
    kept = (1 - masker(tokens, torch.rand(400, 49)).masked).view(400, 3, 16).sum(2).mean(0)
    assert kept[0] > 3 * kept[1] and kept[0] > 3 * kept[2]  # E[share] = 0.8, 0.1, 0.1


def test_patchifier_stacks_modalities_and_rgb_alone_gives_rgb_tokens():
    model = tiny()
    images = torch.randn(2, 5, 16, 16)
    tokens = model.tokenize(images)
    assert tokens.values.shape == (2, 48, 48)  # rgb 4·4·3 values; H and E 16 values, zero-padded
    assert torch.equal(tokens.coords[0, :, 2], torch.arange(3).repeat_interleave(16))
    first_h_patch = images[0, 3, :4, :4].reshape(-1)
    assert torch.equal(tokens.values[0, 16, :16], first_h_patch) and not tokens.values[0, 16, 16:].any()
    rgb_patch = images[0, :3, :4, 4:8].permute(1, 2, 0).reshape(-1)  # (p, q, c) order, second column
    assert torch.equal(tokens.values[0, 1], rgb_patch)
    rgb_only = model.tokenize(images[:, :3])
    assert rgb_only.num_tokens == 16 and torch.equal(rgb_only.values, tokens.values[:, :16])
    with pytest.raises(ValueError, match=r"has 4 channels; expected 5 \(rgb \(3\) \+ hematoxylin \(1\) \+ eosin"):
        model.tokenize(torch.randn(2, 4, 16, 16))


def test_encoder_embeds_each_modality_with_its_own_projection_and_shared_positions():
    model = tiny().eval()
    tokens = model.tokenize(torch.randn(1, 5, 16, 16))
    embedded = model.encoder.embed(tokens)
    position = model.encoder.pos_embed[0, 5]  # row 1, column 1 of the 4×4 grid
    for m, (name, channels) in enumerate(model.patchifier.modalities):
        token = m * 16 + 5
        expected = model.encoder.patch_embeds[name](tokens.values[0, token, :16 * channels]) + position
        torch.testing.assert_close(embedded[0, token], expected)


def test_encoder_sees_the_global_token_and_exactly_the_budget():
    model = tiny()
    seen = []
    model.encoder.blocks.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    model({"inputs": torch.randn(3, 5, 16, 16)})
    assert seen == [torch.Size([3, 1 + 12, 32])]


def test_targets_are_rgb_pixels_and_per_patch_normalised_rgb():
    model = tiny()
    images = torch.randn(2, 5, 16, 16)
    targets = model.make_target(model.tokenize(images), None)
    assert set(targets) == {"rgb", "norm_rgb"}
    patch = images[1, :3, 8:12, 4:8].permute(1, 2, 0).reshape(-1).double()  # token 9: row 2, column 1
    torch.testing.assert_close(targets["rgb"][1, 9].double(), patch)
    normalised = (patch - patch.mean()) / torch.sqrt(patch.var(unbiased=True) + 1e-6)
    torch.testing.assert_close(targets["norm_rgb"][1, 9].double(), normalised, rtol=1e-5, atol=1e-5)


def test_loss_is_the_per_sample_mean_over_removed_tokens_of_the_decoded_modality_only():
    model = tiny(outputs=[dict(name="rgb", source="rgb", loss="mse"),
                          dict(name="hematoxylin", source="hematoxylin", loss="l1", weight=0.5)])
    images = torch.randn(4, 5, 16, 16)
    out = model.run_steps({"inputs": images}, torch.rand(4, 49))
    target, mask, pred = out.target, out.mask, out.pred
    pred = {name: value.detach().requires_grad_() for name, value in pred.items()}
    losses = model.loss(pred, target, mask)
    losses["loss"].backward()
    for m, name in ((0, "rgb"), (1, "hematoxylin")):
        removed = mask.masked[:, m * 16:(m + 1) * 16].bool()
        gradient = pred[name].grad.abs().sum(-1)
        assert (gradient[~removed] == 0).all() and (gradient[removed] > 0).all()
        error = (pred[name] - target[name]).detach()
        per_token = (error ** 2 if name == "rgb" else error.abs()).mean(-1)
        expected = torch.stack([per_token[b][removed[b]].mean() for b in range(4)]).mean()
        torch.testing.assert_close(losses[f"loss_{name}"], expected)
    torch.testing.assert_close(losses["loss"], losses["loss_rgb"] + 0.5 * losses["loss_hematoxylin"])
    # a sample with nothing removed of a modality is left out of that modality's mean (MultiMAE's nanmean)
    loss = MultiModalLoss(outputs=[dict(name="rgb", source="rgb")])
    masked = mask.masked.clone()
    masked[0, :16] = 0
    altered = type(mask)(mask.ids_keep, mask.ids_restore, masked)
    per_token = ((pred["rgb"] - target["rgb"]) ** 2).mean(-1).detach()
    expected = torch.stack([per_token[b][masked[b, :16].bool()].mean() for b in range(1, 4)]).mean()
    torch.testing.assert_close(loss({"rgb": pred["rgb"]}, {"rgb": target["rgb"]}, altered)["loss"], expected)
    # ... and without a 0/0 in the backward pass: every gradient stays finite
    pred["rgb"].grad = None
    loss({"rgb": pred["rgb"]}, {"rgb": target["rgb"]}, altered)["loss"].backward()
    assert torch.isfinite(pred["rgb"].grad).all() and (pred["rgb"].grad[0] == 0).all()


def test_self_distillation_teaches_the_encoder_the_decoders_output_at_visible_patches():
    torch.manual_seed(0)
    model = tiny(self_distillation=0.5)
    images, noise = torch.randn(3, 5, 16, 16), torch.rand(3, 49)
    losses = model({"inputs": images}, noise)
    out = model.run_steps({"inputs": images}, noise)
    mask, latents, pred = out.mask, out.latents, out.pred
    reconstruction = model.compute_loss(out)["loss"]
    student = model.student_head(latents[:, 1:])  # visible tokens, in ids_keep order
    errors = []
    for b in range(3):
        for slot, token in enumerate(mask.ids_keep[b].tolist()):
            if token < 16:  # a visible rgb token: the decoder's rgb output there is the teacher
                errors.append(((student[b, slot] - pred["rgb"][b, token]) ** 2).mean())
    expected = torch.stack(errors).mean()
    torch.testing.assert_close(losses["loss_self_distillation"], expected)
    torch.testing.assert_close(losses["loss"], reconstruction + 0.5 * expected)
    # the teacher is not trained by this term
    model.zero_grad()
    losses["loss_self_distillation"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.decoder.parameters())
    assert model.student_head.weight.grad.abs().sum() > 0


def test_sd_mae_setting_is_rgb_alone_with_the_distillation_term():
    model = tiny(modalities=[("rgb", 3)], num_visible=4, alphas=(1.0,), self_distillation=1.0)
    losses = model({"inputs": torch.randn(2, 3, 16, 16)})
    assert set(losses) == {"loss", "loss_rgb", "loss_norm_rgb", "loss_self_distillation"}
    with pytest.raises(ValueError, match="expected 3"):
        model({"inputs": torch.randn(2, 5, 16, 16)})


def test_fine_tuning_uses_rgb_alone():
    from maekit.eval.finetune import vit_classifier

    spec = dict(type="mmae", img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2, num_visible=12,
                decoder_dim=16, decoder_depth=1, decoder_num_heads=2)
    classifier = vit_classifier(spec, num_classes=4)
    seen = []
    classifier.encoder.blocks.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    losses = classifier({"inputs": torch.randn(2, 3, 16, 16), "label": torch.tensor([0, 3])})
    losses["loss"].backward()
    assert seen == [torch.Size([2, 1 + 16, 32])]  # the global token and the 16 RGB patches, all of them
    assert classifier.encoder.patch_embeds["rgb"].weight.grad.abs().sum() > 0
    for stain in ("hematoxylin", "eosin"):  # the stain projections take no part
        gradient = classifier.encoder.patch_embeds[stain].weight.grad
        assert gradient is None or not gradient.any()


def test_picture_rows_show_inputs_what_was_seen_and_the_reconstruction():
    model = mmae(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2, num_visible=12, decoder_dim=16,
                 decoder_depth=1, decoder_num_heads=2)
    rows = model.panels(torch.randn(2, 3, 16, 16), RGB_MEAN, RGB_STD)  # RGB only: stains by Ruifrok
    assert len(rows) == 2 and len(rows[0]) == 7
    assert all(panel.shape == (16, 16, 3) and panel.dtype == np.uint8 for panel in rows[0])
    sd_mae = tiny(modalities=[("rgb", 3)], num_visible=4, alphas=(1.0,), self_distillation=1.0)
    assert len(sd_mae.panels(torch.randn(2, 3, 16, 16), RGB_MEAN, RGB_STD)[0]) == 3  # input | seen | output


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="source"):
        tiny(outputs=[dict(name="x", source="dapi")])
    with pytest.raises(ValueError, match="target must be"):
        tiny(outputs=[dict(name="x", source="rgb", target="edges")])
    with pytest.raises(ValueError, match="alphas must be positive"):
        DirichletBudgetMasker(12, alphas=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="not divisible"):
        tiny(img_size=18)
