"""The point-cloud MAE mechanism: groups, masks, the two decoders, targets and losses, and the
official key layouts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maekit.io.checkpoint import CheckpointError
from maekit.structures import Mask, Tokens
from maekit_pointcloud.geometry import chamfer_distance
from maekit_pointcloud.interop import convert_point_checkpoint, detect_point_layout
from maekit_pointcloud.model import (
    CompletionChamferLoss,
    FoldingDecoder,
    MaskedChamferLoss,
    PointBlockMasker,
    PointGroupPatchifier,
    PointRandomMasker,
    mae3d,
    point_mae,
)

TINY_POINT_MAE = dict(num_groups=16, group_size=8, embed_dim=32, depth=2, num_heads=2, decoder_depth=1,
                      decoder_num_heads=2)
TINY_MAE3D = dict(num_groups=8, group_size=16, embed_dim=32, depth=1, num_heads=2, head_dim=8, mlp_dim=48,
                  decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, edgeconv_k=4)


def test_groups_are_fps_centres_with_their_nearest_points_recentred_or_not():
    cloud = torch.rand(2, 100, 3, generator=torch.Generator().manual_seed(0))
    tokens = PointGroupPatchifier(num_groups=5, group_size=4, recentre=True)({"inputs": cloud})
    assert tokens.values.shape == (2, 5, 12) and tokens.coords.shape == (2, 5, 3)
    for b in range(2):
        for g in range(5):
            centre = tokens.coords[b, g]
            distances = ((cloud[b] - centre) ** 2).sum(-1)
            nearest = cloud[b][distances.argsort()[:4]] - centre
            assert torch.allclose(tokens.values[b, g].reshape(4, 3), nearest)
            assert torch.equal(tokens.values[b, g, :3], torch.zeros(3))  # the centre is its own nearest point
    absolute = PointGroupPatchifier(num_groups=5, group_size=4, recentre=False)({"inputs": cloud})
    assert torch.allclose(absolute.values.reshape(2, 5, 4, 3) - absolute.coords[:, :, None], tokens.values.reshape(2, 5, 4, 3))
    with pytest.raises(ValueError, match="cannot give 5 groups of 200"):
        PointGroupPatchifier(5, 200)({"inputs": cloud})
    with pytest.raises(ValueError, match="B×N×3"):
        PointGroupPatchifier(5, 4)({"inputs": torch.rand(2, 100, 6)})


def test_masked_counts_follow_the_references_rounding():
    tokens = Tokens(torch.zeros(3, 64, 6), torch.rand(3, 64, 3))
    assert PointRandomMasker(0.6)(tokens).masked.sum(1).tolist() == [38] * 3  # Point-MAE: int(64 · 0.6)
    tokens = Tokens(torch.zeros(3, 32, 6), torch.rand(3, 32, 3))
    assert PointBlockMasker(0.7)(tokens).num_visible == 10  # MAE3D: 22 of 32 masked


def test_block_masking_masks_the_chosen_centre_and_its_nearest_centres():
    centres = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0], [5, 0, 0], [6, 0, 0], [7, 0, 0],
                            [8, 0, 0], [9, 0, 0], [10, 0, 0]])[None]
    tokens = Tokens(torch.zeros(1, 10, 3), centres)
    noise = torch.ones(1, 10)
    noise[0, 1] = 0  # the random centre: index 1
    mask = PointBlockMasker(0.4)(tokens, noise=noise)
    assert torch.nonzero(mask.masked[0]).flatten().tolist() == [0, 1, 2, 3]


def test_the_encoder_sees_only_visible_patches_and_adds_positions_before_every_block():
    torch.manual_seed(0)
    model = point_mae(**TINY_POINT_MAE).eval()
    cloud = torch.rand(2, 128, 3)
    tokens = model.tokenize({"inputs": cloud})
    mask = model.make_mask(tokens)
    assert mask.num_visible == 16 - int(16 * 0.6)
    visible = tokens.take(mask.ids_keep)
    encoder = model.encoder
    x = encoder.patch_embed(visible.values.reshape(2, -1, 8, 3))
    positions = encoder.pos_mlp(visible.coords)
    for block in encoder.blocks:
        x = block(x + positions)
    assert torch.allclose(model.encoder(model.encoder_input(None, tokens, mask)), encoder.norm(x), atol=1e-6)


def test_masked_chamfer_counts_only_masked_groups():
    generator = torch.Generator().manual_seed(4)
    pred = torch.rand(2, 4, 15, generator=generator, requires_grad=True)
    target = torch.rand(2, 4, 15, generator=generator)
    masked = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    mask = Mask(ids_keep=torch.zeros(2, 1, dtype=torch.long), ids_restore=torch.zeros(2, 4, dtype=torch.long), masked=masked)
    losses = MaskedChamferLoss()(pred, target, mask)
    rows = [(0, 0), (0, 2), (1, 1)]
    expected = np.mean([chamfer_distance(pred[b, g].reshape(1, 5, 3), target[b, g].reshape(1, 5, 3)).item()
                        for b, g in rows])
    assert losses["loss"].item() == pytest.approx(expected, rel=1e-6)
    losses["loss"].backward()
    kept = ~masked.bool()
    assert pred.grad[kept].abs().sum() == 0 and pred.grad[~kept].abs().sum() > 0


def test_completion_loss_is_zero_for_a_perfect_reconstruction_and_sums_over_the_batch():
    generator = torch.Generator().manual_seed(5)
    cloud, centres = torch.rand(3, 64, 3, generator=generator), torch.rand(3, 8, 3, generator=generator)
    loss = CompletionChamferLoss()
    perfect = loss({"cloud": cloud[:, torch.randperm(64)], "centres": centres}, {"cloud": cloud, "centres": centres}, None)
    assert perfect["loss"].item() == 0
    noisy = {"cloud": cloud + 0.05, "centres": centres - 0.1}
    summed = loss(noisy, {"cloud": cloud, "centres": centres}, None)
    per_cloud = chamfer_distance(noisy["cloud"], cloud, "l2", "sum", batch_reduction=None)
    per_centres = chamfer_distance(noisy["centres"], centres, "l2", "sum", batch_reduction=None)
    assert summed["loss"].item() == pytest.approx((0.1 * per_cloud + per_centres).sum().item(), rel=1e-6)
    meaned = CompletionChamferLoss(batch_reduction="mean")(noisy, {"cloud": cloud, "centres": centres}, None)
    assert meaned["loss"].item() == pytest.approx(summed["loss"].item() / 3, rel=1e-6)


def test_folding_places_each_grid_around_its_predicted_centre_in_the_references_layout():
    torch.manual_seed(0)
    decoder = FoldingDecoder(encoder_dim=16, embed_dim=16, depth=1, num_heads=2, head_dim=8, mlp_dim=32,
                             num_groups=4, grid_side=2, center_hidden=16, folding_hidden=8).eval()
    torch.nn.init.zeros_(decoder.mlp_folding[-1].weight)
    torch.nn.init.zeros_(decoder.mlp_folding[-1].bias)
    tokens = Tokens(torch.zeros(2, 4, 12), torch.rand(2, 4, 3))
    mask = Mask.from_order(torch.arange(4).expand(2, 4), 2)
    latents = torch.randn(2, 3, 16)  # class token + 2 visible patches
    out = decoder(latents, mask, tokens)
    assert out["cloud"].shape == (2, 16, 3) and out["centres"].shape == (2, 4, 3)
    # with the last folding layer zero every point sits on its centre, 4 (= 2×2) per centre in order
    assert torch.allclose(out["cloud"], out["centres"].repeat_interleave(4, dim=1))
    # the centre MLP's 3·G outputs read as (3, G): output j·G + g is coordinate j of centre g
    decoder.mlp_center[-1].bias.data = torch.arange(12.0)
    torch.nn.init.zeros_(decoder.mlp_center[-1].weight)
    assert decoder(latents, mask, tokens)["centres"][0].tolist() == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]
    side = np.linspace(-0.1, 0.1, 2, dtype=np.float32)  # the reference's grid: numpy's meshgrid, viewed (2, m)
    assert np.array_equal(decoder.grid.numpy(), np.array(np.meshgrid(side, side)).reshape(2, -1))


def test_both_methods_train_a_step():
    torch.manual_seed(0)
    for model, points in ((point_mae(**TINY_POINT_MAE), 128), (mae3d(**TINY_MAE3D), 128)):
        losses = model({"inputs": torch.rand(2, points, 3)})
        losses["loss"].backward()
        assert torch.isfinite(losses["loss"])
        assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad), type(model.decoder)


# -- the official key layouts: names and shapes of Point-MAE's Point_MAE and MAE3D's MAE3D ------------
def point_mae_official_state(dim=384, depth=12, decoder_depth=4, group_size=32) -> dict[str, torch.Tensor]:
    """Point_MAE's state dict (models/Point_MAE.py, cfgs/pretrain.yaml), filled with random values."""
    shapes = {"mask_token": (1, 1, dim),
              "MAE_encoder.encoder.first_conv.0.weight": (128, 3, 1), "MAE_encoder.encoder.first_conv.0.bias": (128,),
              "MAE_encoder.encoder.first_conv.3.weight": (256, 128, 1), "MAE_encoder.encoder.first_conv.3.bias": (256,),
              "MAE_encoder.encoder.second_conv.0.weight": (512, 512, 1), "MAE_encoder.encoder.second_conv.0.bias": (512,),
              "MAE_encoder.encoder.second_conv.3.weight": (dim, 512, 1), "MAE_encoder.encoder.second_conv.3.bias": (dim,),
              "MAE_encoder.norm.weight": (dim,), "MAE_encoder.norm.bias": (dim,),
              "MAE_decoder.norm.weight": (dim,), "MAE_decoder.norm.bias": (dim,),
              "increase_dim.0.weight": (3 * group_size, dim, 1), "increase_dim.0.bias": (3 * group_size,)}
    for bn, width in (("first_conv.1", 128), ("second_conv.1", 512)):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"MAE_encoder.encoder.{bn}.{name}"] = (width,)
        shapes[f"MAE_encoder.encoder.{bn}.num_batches_tracked"] = ()
    for prefix in ("MAE_encoder.pos_embed", "decoder_pos_embed"):
        shapes.update({f"{prefix}.0.weight": (128, 3), f"{prefix}.0.bias": (128,), f"{prefix}.2.weight": (dim, 128),
                       f"{prefix}.2.bias": (dim,)})
    for prefix, count in (("MAE_encoder.blocks.blocks", depth), ("MAE_decoder.blocks", decoder_depth)):
        for i in range(count):
            shapes.update({f"{prefix}.{i}.norm1.weight": (dim,), f"{prefix}.{i}.norm1.bias": (dim,),
                           f"{prefix}.{i}.norm2.weight": (dim,), f"{prefix}.{i}.norm2.bias": (dim,),
                           f"{prefix}.{i}.mlp.fc1.weight": (4 * dim, dim), f"{prefix}.{i}.mlp.fc1.bias": (4 * dim,),
                           f"{prefix}.{i}.mlp.fc2.weight": (dim, 4 * dim), f"{prefix}.{i}.mlp.fc2.bias": (dim,),
                           f"{prefix}.{i}.attn.qkv.weight": (3 * dim, dim),  # qkv_bias=False
                           f"{prefix}.{i}.attn.proj.weight": (dim, dim), f"{prefix}.{i}.attn.proj.bias": (dim,)})
    generator = torch.Generator().manual_seed(0)
    return {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=generator))
            for k, s in shapes.items()}


def mae3d_official_state(dim=1024, depth=6, inner=512, mlp=2048, groups=32) -> dict[str, torch.Tensor]:
    """MAE3D's DataParallel state dict (model.py: MAE3D), ``module.``-prefixed, each EdgeConv
    BatchNorm under both of its names (bnN and convN.1)."""
    shapes = {"token_init": (dim,), "cls_token_encoder": (1, 1, dim), "cls_token_decoder": (1, 1, dim),
              "encoder.cls_token": (1, 1, dim), "decoder.cls_token": (1, 1, dim),
              "encoder_to_decoder.weight": (dim, dim),
              "encoder.patch_embed.conv1.0.weight": (64, 6, 1, 1), "encoder.patch_embed.conv2.0.weight": (64, 128, 1, 1),
              "encoder.patch_embed.conv3.0.weight": (128, 128, 1, 1), "encoder.patch_embed.conv4.0.weight": (256, 256, 1, 1),
              "encoder.patch_embed.conv5.0.weight": (dim, 512, 1),
              "mlp_center.0.weight": (1024, dim), "mlp_center.0.bias": (1024,), "mlp_center.3.weight": (1024, 1024),
              "mlp_center.3.bias": (1024,), "mlp_center.6.weight": (3 * groups, 1024), "mlp_center.6.bias": (3 * groups,),
              "mlp_folding.0.weight": (512, dim + 5, 1), "mlp_folding.0.bias": (512,),
              "mlp_folding.3.weight": (512, 512, 1), "mlp_folding.3.bias": (512,),
              "mlp_folding.6.weight": (3, 512, 1), "mlp_folding.6.bias": (3,)}
    batchnorms = {f"encoder.patch_embed.{name}": width for name, width in
                  (("bn1", 64), ("bn2", 64), ("bn3", 128), ("bn4", 256), ("bn5", dim),
                   ("conv1.1", 64), ("conv2.1", 64), ("conv3.1", 128), ("conv4.1", 256), ("conv5.1", dim))}
    batchnorms.update({"mlp_center.1": 1024, "mlp_center.4": 1024, "mlp_folding.1": 512, "mlp_folding.4": 512})
    for bn, width in batchnorms.items():
        shapes.update({f"{bn}.{n}": (width,) for n in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{bn}.num_batches_tracked"] = ()
    for prefix in ("pos_embed_encoder", "pos_embed_decoder"):
        shapes.update({f"{prefix}.0.weight": (dim, 3), f"{prefix}.0.bias": (dim,), f"{prefix}.2.weight": (dim, dim),
                       f"{prefix}.2.bias": (dim,)})
    for part in ("encoder", "decoder"):
        for i in range(depth):
            layer = f"{part}.transformer.layers.{i}"
            shapes.update({f"{layer}.0.norm.weight": (dim,), f"{layer}.0.norm.bias": (dim,),
                           f"{layer}.0.net.to_qkv.weight": (3 * inner, dim),
                           f"{layer}.0.net.out.0.weight": (dim, inner), f"{layer}.0.net.out.0.bias": (dim,),
                           f"{layer}.1.norm.weight": (dim,), f"{layer}.1.norm.bias": (dim,),
                           f"{layer}.1.net.net.0.weight": (mlp, dim), f"{layer}.1.net.net.0.bias": (mlp,),
                           f"{layer}.1.net.net.3.weight": (dim, mlp), f"{layer}.1.net.net.3.bias": (dim,)})
    generator = torch.Generator().manual_seed(1)
    return {f"module.{k}": (torch.tensor(3) if k.endswith("num_batches_tracked") else torch.randn(s, generator=generator))
            for k, s in shapes.items()}


def test_official_point_mae_weights_load_into_point_mae_exactly():
    official = {f"module.{k}": v for k, v in point_mae_official_state().items()}  # as saved under DataParallel
    assert detect_point_layout(official) == "point-mae"
    converted = convert_point_checkpoint(official)
    model = point_mae()
    model.load_state_dict(converted, strict=True)  # every key, every shape
    state = model.state_dict()
    assert torch.equal(state["decoder.pred.weight"], official["module.increase_dim.0.weight"][..., 0])
    assert torch.equal(state["encoder.blocks.11.attn.qkv.weight"], official["module.MAE_encoder.blocks.blocks.11.attn.qkv.weight"])
    assert torch.equal(state["decoder.pos_mlp.2.bias"], official["module.decoder_pos_embed.2.bias"])
    assert torch.equal(state["encoder.patch_embed.second_conv.1.running_var"],
                       official["module.MAE_encoder.encoder.second_conv.1.running_var"])


def test_official_mae3d_weights_load_into_mae3d_exactly():
    official = mae3d_official_state()
    assert detect_point_layout(official) == "mae3d"
    converted = convert_point_checkpoint(official)
    model = mae3d()
    model.load_state_dict(converted, strict=True)
    state = model.state_dict()
    assert torch.equal(state["decoder.mask_token"][0, 0], official["module.token_init"])
    assert torch.equal(state["encoder.cls_pos"], official["module.cls_token_encoder"])
    assert torch.equal(state["encoder.patch_embed.edge_convs.2.1.running_mean"], official["module.encoder.patch_embed.bn3.running_mean"])
    assert torch.equal(state["decoder.blocks.5.attn.qkv.weight"], official["module.decoder.transformer.layers.5.0.net.to_qkv.weight"])
    assert torch.equal(state["decoder.blocks.0.mlp.fc2.weight"], official["module.decoder.transformer.layers.0.1.net.net.3.weight"])
    with pytest.raises(CheckpointError, match="not part of the MAE3D pre-training layout"):
        convert_point_checkpoint({**official, "module.extra.weight": torch.zeros(1)}, "mae3d")
    with pytest.raises(ValueError, match="cannot tell the checkpoint layout"):
        detect_point_layout({"something.weight": torch.zeros(1)})


def test_layer_decay_counts_position_mlps_and_class_positions_as_the_embedding():
    from mmengine.optim import build_optim_wrapper

    import maekit.engine  # noqa: F401 (registers the constructor)
    from maekit.engine.model import RunnerModel
    from maekit_pointcloud.evaluate import PointClassifier

    method = mae3d(**TINY_MAE3D)  # depth 1, a class token with its own position
    model = RunnerModel(PointClassifier(method.patchifier, method.encoder, num_classes=3))
    wrapper = build_optim_wrapper(model, dict(type="OptimWrapper", constructor="MaekitLayerDecayConstructor",
                                              optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05),
                                              paramwise_cfg=dict(layer_decay=0.5)))
    lrs = {group["name"]: (group["lr"], group["weight_decay"]) for group in wrapper.optimizer.param_groups}
    assert lrs["model.encoder.pos_mlp.0.weight"] == (0.25, 0.05)  # layer 0 of 1 block: decay²
    assert lrs["model.encoder.cls_pos"] == (0.25, 0.0)
    assert lrs["model.encoder.patch_embed.fuse.0.weight"] == (0.25, 0.05)
    assert lrs["model.encoder.blocks.0.attn.qkv.weight"] == (0.5, 0.05)
    assert lrs["model.head.8.weight"] == (1.0, 0.05)
