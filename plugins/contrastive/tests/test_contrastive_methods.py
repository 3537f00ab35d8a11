"""CMAE, SDMAE and MACRL: each method's masking, branches and loss reduction against direct
computations on tiny models."""
from __future__ import annotations

import pytest
import torch
from maekit_contrastive.cmae import cmae
from maekit_contrastive.macrl import macrl
from maekit_contrastive.sdmae import sdmae
from torch.nn import functional as F

from maekit.model import seeded_noise
from maekit.nn.teachers import update_teachers

TINY = dict(size=None, encoder_name="vit_tiny_patch16_224", img_size=16, patch_size=4, in_chans=3,
            encoder=dict(embed_dim=48, depth=2, num_heads=3), decoder_embed_dim=24, decoder_num_heads=2)


def batch_of(views: dict[str, torch.Tensor]) -> dict:
    first = next(iter(views.values()))
    return {"inputs": first, "views": views, "label": torch.zeros(len(first)), "index": torch.arange(len(first))}


def patchify(images: torch.Tensor, p: int = 4) -> torch.Tensor:
    """The reference's patchify: (N, C, H, W) → (N, L, p·p·C) in (p, q, c) order."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)


def info_nce(q: torch.Tensor, k: torch.Tensor, tau: float) -> torch.Tensor:
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return F.cross_entropy(q @ k.t() / tau, torch.arange(len(q)))


def vit_states_before_norm(encoder, images: torch.Tensor) -> torch.Tensor:
    """cls + every patch through the blocks, no final norm — written out from the parts."""
    x = F.conv2d(images, encoder.patch_embed.proj.weight, encoder.patch_embed.proj.bias, stride=4).flatten(2).transpose(1, 2)
    x = x + encoder.pos_embed[:, 1:]
    cls = (encoder.cls_token + encoder.pos_embed[:, :1]).expand(len(x), -1, -1)
    return encoder.blocks(torch.cat([cls, x], dim=1))


# -- CMAE -------------------------------------------------------------------------------------
def test_cmae_loss_is_norm_pix_mse_plus_two_tau_infonce_against_the_ema_branch():
    torch.manual_seed(0)
    model = cmae(**TINY, decoder_depth=1, projector_dim=16).train()
    online, target = torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)
    losses = model(batch_of({"online": online, "target": target}), noise=seeded_noise(1))
    out = model.run_steps(online, noise=seeded_noise(1))
    # 2×2 blocks of the 4×4 grid at 0.65: int(4·0.35) = 1 block of 4 tokens visible
    assert out.mask.num_visible == 4 and torch.all(out.mask.masked.sum(1) == 12)
    pixels = patchify(online)
    normed = (pixels - pixels.mean(-1, keepdim=True)) / (pixels.var(-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((out.pred - normed) ** 2).mean(-1)
    reconstruction = (per_patch * out.mask.masked).sum() / out.mask.masked.sum()
    query = model.predictor(model.projector(model.feature_decoder(out.latents, out.mask, out.tokens).mean(1)))
    with torch.no_grad():
        states = vit_states_before_norm(model.teacher_encoder.module, target)
        key = model.teacher_projector(states[:, 1:].mean(1))  # patch tokens only, before the final norm
    contrastive = 2 * 0.07 * info_nce(query, key, 0.07)
    torch.testing.assert_close(losses["reconstruction"], reconstruction, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["contrastive"], contrastive.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["loss"], reconstruction + contrastive, rtol=1e-4, atol=1e-5)


def test_cmae_target_branch_starts_as_a_copy_and_follows_by_ema_after_each_step():
    torch.manual_seed(0)
    model = cmae(**TINY, decoder_depth=1, projector_dim=16).train()
    for student, teacher in (("encoder", model.teacher_encoder), ("projector", model.teacher_projector)):
        theirs = dict(model.get_submodule(student).named_parameters())
        assert all(torch.equal(p, theirs[n]) for n, p in teacher.module.named_parameters())
        assert not any(p.requires_grad for p in teacher.parameters())
    before = {n: p.clone() for n, p in model.teacher_encoder.module.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    views = {"online": torch.randn(4, 3, 16, 16), "target": torch.randn(4, 3, 16, 16)}
    model(batch_of(views))["loss"].backward()
    optimizer.step()
    assert update_teachers(model, iteration=0) == {"teacher_encoder": 0.996, "teacher_projector": 0.996}
    online = dict(model.encoder.named_parameters())
    for name, value in model.teacher_encoder.module.named_parameters():
        torch.testing.assert_close(value, 0.996 * before[name] + 0.004 * online[name])
    # the EMA projector normalises with the batch's statistics while training (the reference's train-mode target)
    assert model.teacher_projector.module[1].training and not model.teacher_encoder.module.training


def test_cmae_reads_its_views_by_name_whatever_their_order():
    torch.manual_seed(0)
    model = cmae(**TINY, decoder_depth=1, projector_dim=16).eval()  # eval: BatchNorm on running statistics
    online, target = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    one = model(batch_of({"online": online, "target": target}), noise=seeded_noise(1))
    swapped = model(batch_of({"target": target, "online": online}), noise=seeded_noise(1))
    assert torch.equal(one["loss"], swapped["loss"])


def test_encoder_only_files_load_into_each_method(tmp_path):
    from maekit.eval.probe import load_trained_model
    from maekit.io.export import export_encoder

    for config in (dict(type="cmae", **TINY, decoder_depth=1, projector_dim=16),
                   dict(type="sdmae", **{**TINY, "decoder_num_heads": 4}, decoder_depth=1, contrastive_heads=4, mlp_dim=32),
                   dict(type="macrl", **TINY, decoder_depth=1, projector_hidden=32, projector_dim=16, queue=64)):
        from maekit.registry import build

        trained = build("model", config)
        path, _ = export_encoder(trained, tmp_path / config["type"])
        loaded = load_trained_model(config, path)
        for name, value in trained.encoder.state_dict().items():
            assert torch.equal(loaded.encoder.state_dict()[name], value), (config["type"], name)


def test_cmae_sync_bn_converts_every_projection_batchnorm():
    model = cmae(**TINY, decoder_depth=1, projector_dim=16, sync_bn=True).train()
    for head in (model.projector, model.predictor, model.teacher_projector.module):
        assert isinstance(head[1], torch.nn.SyncBatchNorm)
    views = {"online": torch.randn(4, 3, 16, 16), "target": torch.randn(4, 3, 16, 16)}
    assert torch.isfinite(model(batch_of(views))["loss"])  # one process: plain batch statistics
    with pytest.raises(ValueError, match=r"cmae: the 4×4 token grid .* does not divide into mask_block=3 blocks"):
        cmae(**TINY, mask_block=3)


def test_cmae_without_views_says_what_the_config_needs():
    model = cmae(**TINY, decoder_depth=1, projector_dim=16)
    with pytest.raises(ValueError, match=r"cmae trains on named views: set data.transform=dict\(type='views'"):
        model({"inputs": torch.randn(2, 3, 16, 16)})
    with pytest.raises(ValueError, match="cmae needs the view.s. target; data.transform's views are online, second"):
        model(batch_of({"online": torch.randn(2, 3, 16, 16), "second": torch.randn(2, 3, 16, 16)}))
    with pytest.raises(ValueError, match="cmae needs the view.s. online; data.transform's views are first, target"):
        model(batch_of({"first": torch.randn(2, 3, 16, 16), "target": torch.randn(2, 3, 16, 16)}))


# -- SDMAE ------------------------------------------------------------------------------------
def sdmae_tiny(**extra):
    # pixel width 4·4·3 = 48 = the encoder width, as 16²·3 = 768 = D in the reference
    return sdmae(**{**TINY, "decoder_num_heads": 4}, decoder_depth=1, contrastive_heads=4, mlp_dim=32, **extra)


def test_sdmae_one_mask_both_views_and_the_reference_loss():
    torch.manual_seed(0)
    model = sdmae_tiny().train()
    first, second = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    passes = []
    original = model.run_steps
    model.run_steps = lambda *args, **kwargs: passes.append(original(*args, **kwargs)) or passes[-1]
    torch.manual_seed(5)
    losses = model(batch_of({"first": first, "second": second}), noise=seeded_noise(2))
    out_1, out_2 = passes
    assert torch.equal(out_1.mask.masked, out_2.mask.masked)  # the same mask on both views
    assert out_1.mask.num_visible == 4  # int(16·0.25)
    reconstruction = sum(((out.pred - patchify(view)) ** 2).mean(-1).mul(out.mask.masked).sum() / out.mask.masked.sum()
                         for out, view in ((out_1, first), (out_2, second)))  # raw pixels: norm-pix off
    location = sum(F.mse_loss(model.locator(out.latents[:, 1:]), F.one_hot(out.mask.ids_keep, 16).float())
                   for out in (out_1, out_2))
    decoded = [model.decoder.forward_with_prefix(out.latents, out.mask, out.tokens) for out in (out_1, out_2)]
    assert decoded[0].shape == (8, 17, 48)  # cls position kept for the contrastive head
    queries = [model.predictor(model.descriptor(d)) for d in decoded]
    keys = [model.teacher_descriptor(d) for d in decoded]
    contrastive = 2 * 1.0 * (info_nce(queries[0], keys[1], 1.0) + info_nce(queries[1], keys[0], 1.0))
    torch.testing.assert_close(losses["reconstruction"], reconstruction.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["location"], location.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["contrastive"], contrastive.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["loss"], reconstruction + location + 0.1 * contrastive, rtol=1e-4, atol=1e-5)


def test_sdmae_freezes_the_random_patch_embedding_and_averages_only_its_head():
    torch.manual_seed(0)
    model = sdmae_tiny().train()
    frozen = model.encoder.patch_embed.proj.weight.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(batch_of({"first": torch.rand(4, 3, 16, 16), "second": torch.rand(4, 3, 16, 16)}))["loss"].backward()
    optimizer.step()
    assert torch.equal(model.encoder.patch_embed.proj.weight, frozen)
    assert update_teachers(model, 0) == {"teacher_descriptor": 0.999}  # the EMA is over the head only
    assert model.teacher_descriptor.student == "descriptor"
    last_bn = model.descriptor.head[-1]
    assert isinstance(last_bn, torch.nn.BatchNorm1d) and last_bn.weight is None  # MoCo v3's last BN, no affine
    # the key head starts from its own init, as the reference's (initialize_weights runs after the copy)
    fresh = sdmae_tiny()
    assert not torch.equal(fresh.teacher_descriptor.module.head[0].weight, fresh.descriptor.head[0].weight)
    with pytest.raises(ValueError, match="pixel width p²·C = 48, which contrastive_heads 5 does not divide"):
        sdmae(**TINY, decoder_depth=1, contrastive_heads=5)
    with pytest.raises(ValueError, match="pixel width p²·C = 16, which the encoder head count 3 does not divide"):
        sdmae(**{**TINY, "in_chans": 1}, decoder_depth=1)


# -- MACRL ------------------------------------------------------------------------------------
def test_macrl_masks_each_branch_at_its_ratio_and_sums_l1_with_the_mean_of_both_directions():
    torch.manual_seed(0)
    model = macrl(**TINY, decoder_depth=1, projector_hidden=32, projector_dim=16, queue=64).train()
    strong, weak = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    passes = []
    original = model.run_steps
    model.run_steps = lambda *args, **kwargs: passes.append(original(*args, **kwargs)) or passes[-1]
    bank = model.contrastive.bank.clone()
    losses = model(batch_of({"strong": strong, "weak": weak}), noise=seeded_noise(3))
    out_a, out_b = passes
    assert out_a.mask.num_visible == 4 and out_b.mask.num_visible == 8  # 0.75 and 0.5 of 16
    l1 = [((out.pred - patchify(view)).abs().mean(-1) * out.mask.masked).sum() / out.mask.masked.sum()
          for out, view in ((out_a, strong), (out_b, weak))]
    z = [F.normalize(model.projector(out.latents[:, 1:].mean(1)), dim=1) for out in (out_a, out_b)]

    def with_bank(q, k, negatives):
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ negatives.t()], dim=1) / 0.2
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))

    # both directions against the bank as it was; each branch's projection is the other's positive
    contrastive = (with_bank(z[0], z[1].detach(), bank) + with_bank(z[1], z[0].detach(), bank)) / 2
    torch.testing.assert_close(losses["reconstruction_strong"], l1[0].detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["reconstruction_weak"], l1[1].detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["contrastive"], contrastive.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["loss"], l1[0] + l1[1] + contrastive, rtol=1e-4, atol=1e-5)
    assert int(model.contrastive.bank_pointer) == 16  # then both branches' keys went in
    torch.testing.assert_close(model.contrastive.bank[:16], torch.cat(z).detach())


def test_macrl_branch_masks_are_independent_draws():
    model = macrl(**TINY, decoder_depth=1, projector_hidden=32, projector_dim=16, queue=64)
    passes = []
    original = model.run_steps
    model.run_steps = lambda *args, **kwargs: passes.append(original(*args, **kwargs)) or passes[-1]
    images = torch.rand(64, 3, 16, 16)
    model(batch_of({"strong": images, "weak": images}), noise=seeded_noise(4))
    a, b = passes[0].mask.masked.bool(), passes[1].mask.masked.bool()
    # were the masks nested (one noise for both), every token A keeps would be kept by B too
    kept_by_a_removed_by_b = (~a & b).any(dim=1).float().mean()
    assert kept_by_a_removed_by_b > 0.5


def test_macrl_refuses_a_weak_branch_that_masks_more():
    with pytest.raises(ValueError, match="strong_mask_ratio > weak_mask_ratio"):
        macrl(**TINY, strong_mask_ratio=0.5, weak_mask_ratio=0.75)
