"""MeshMAE's mechanism: tokens, padding-aware masking and attention, targets, loss, heads, the
official key layout, augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from maekit.io.checkpoint import CheckpointError
from maekit_mesh.data import MeshAugment
from maekit_mesh.evaluate import MeshClassifier, voted_accuracy
from maekit_mesh.features import CORNERS, NORMALS, VALID, VERTEX, face_features, pack_mesh
from maekit_mesh.interop import meshmae_to_maekit
from maekit_mesh.model import MeshMAELoss, chamfer_l1, mesh_mae
from maekit_mesh.remesh import remesh

TINY = dict(embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


@pytest.fixture(scope="module")
def meshes() -> torch.Tensor:
    """Two packed meshes of 24 and 16 real patches, padded to 24."""
    sphere = pack_mesh(remesh(trimesh.creation.icosphere(2), base_faces=24), max_patches=24)
    box = pack_mesh(remesh(trimesh.creation.box(extents=[1, 2, 1]).subdivide(), base_faces=16), max_patches=24)
    assert sphere[:, 0, VALID].sum() == 24 and box[:, 0, VALID].sum() == 16
    return torch.from_numpy(np.stack([sphere, box]))


def test_tokens_are_64_faces_by_10_features_face_major_with_centres(meshes):
    tokens = mesh_mae(**TINY).tokenize({"inputs": meshes})
    assert tokens.values.shape == (2, 24, 640) and tokens.coords.shape == (2, 24, 4)
    features = face_features(meshes[..., CORNERS], meshes[..., NORMALS])
    assert torch.allclose(tokens.values[0, 3, 10:20], features[0, 3, 1])  # face 1 of patch 3: values 10–19
    centres = meshes[0, 3, :, CORNERS].reshape(64, 3, 3).mean(1).mean(0)
    assert torch.allclose(tokens.coords[0, 3, :3], centres, atol=1e-6)
    assert tokens.coords[1, :, 3].tolist() == [1.0] * 16 + [0.0] * 8 and (tokens.values[1, 16:] == 0).all()


def test_padding_patches_are_never_masked_and_every_mesh_loses_the_same_count(meshes):
    model = mesh_mae(**TINY)
    tokens = model.tokenize({"inputs": meshes})
    for seed in range(20):
        mask = model.make_mask(tokens, torch.rand(2, 24, generator=torch.Generator().manual_seed(seed)))
        assert mask.masked.sum(1).tolist() == [8, 8]  # int(0.5 · 16 real patches of the smaller mesh)
        assert (mask.masked[1, 16:] == 0).all()


def test_padding_neither_enters_the_loss_nor_reaches_the_real_patches(meshes):
    torch.manual_seed(0)
    model = mesh_mae(**TINY).eval()
    noise = torch.rand(2, 24, generator=torch.Generator().manual_seed(1))
    changed = meshes.clone()
    changed[1, 16:, :, CORNERS] = torch.randn(8, 64, 9)  # garbage where the padding is (still marked invalid)
    changed[1, 16:, :VERTEX.stop, VERTEX] = 5.0
    for batch in (meshes, changed):
        tokens = model.tokenize({"inputs": batch})
        tokens.values[1, 16:] = torch.randn(8, 640)  # even the padding tokens' values
        mask = model.make_mask(tokens, noise)
        latents = model.encoder(tokens.take(mask.ids_keep))
        real = torch.cat([torch.zeros(2, 1, dtype=torch.bool), ~(tokens.take(mask.ids_keep).coords[..., 3] < 0.5)], 1)
        if batch is meshes:
            reference = latents[real]
        else:
            assert torch.allclose(latents[real], reference, atol=1e-5)
    losses = model({"inputs": meshes}, noise=noise)
    assert torch.allclose(losses["loss"], model({"inputs": changed}, noise=noise)["loss"], atol=1e-5)


def test_targets_are_the_45_vertices_and_channel_major_features_and_the_loss_their_formula(meshes):
    torch.manual_seed(0)
    model = mesh_mae(**TINY)
    pred, mask, target = model.reconstruct({"inputs": meshes})
    assert target["vertices"].shape == (2, 24, 45, 3) and pred["vertices"].shape == (2, 24, 45, 3)
    tokens = model.tokenize({"inputs": meshes})
    assert torch.equal(target["features"][0, 5, 2 * 64 + 7], tokens.values[0, 5, 7 * 10 + 2])  # c·64 + f
    removed = mask.masked.bool()
    distances = torch.cdist(pred["vertices"][removed], target["vertices"][removed])
    chamfer = ((distances.min(2).values.mean(1) + distances.min(1).values.mean(1)) / 2).mean()
    mse = ((pred["features"][removed] - target["features"][removed]) ** 2).mean()
    losses = MeshMAELoss(0.5)(pred, target, mask)
    assert losses["loss"].item() == pytest.approx((mse + 0.5 * chamfer).item(), rel=1e-5)
    cloud = torch.rand(3, 45, 3)
    assert chamfer_l1(cloud, cloud[:, torch.randperm(45)]).abs().max() == 0


def test_the_decoder_predicts_vertices_as_offsets_from_the_patch_centre(meshes):
    model = mesh_mae(**TINY)
    torch.nn.init.zeros_(model.decoder.to_vertices.weight)
    torch.nn.init.zeros_(model.decoder.to_vertices.bias)
    pred, _, _ = model.reconstruct({"inputs": meshes})
    tokens = model.tokenize({"inputs": meshes})
    assert torch.allclose(pred["vertices"], tokens.coords[..., None, :3].expand(-1, -1, 45, -1))


def test_classifier_pools_real_patches_and_voting_counts_variants(meshes):
    model = mesh_mae(**TINY)
    classifier = MeshClassifier(model.patchifier, model.encoder, num_classes=3).eval()
    logits = classifier.classify({"inputs": meshes})
    assert logits.shape == (2, 3)
    features = model.encode({"inputs": meshes})  # padding returned as the mean of the real patches
    assert torch.allclose(features[1, 17:].mean(0), features[1, 1:17].mean(0), atol=1e-5)
    assert voted_accuracy(np.array([0, 1, 1, 2, 2]), np.array([1, 1, 1, 2, 2]), ["a", "a", "a", "b", "b"]) == 1.0
    assert voted_accuracy(np.array([0, 0, 1]), np.array([1, 1, 1]), ["a", "a", "a"]) == 0.0


def meshmae_official_state(dim=768, depth=12, decoder_dim=512, decoder_depth=6) -> dict[str, torch.Tensor]:
    """Mesh_mae's state dict (model/meshmae.py), random values, every key and shape."""
    shapes = {"mask_token": (1, 1, decoder_dim), "cls_token": (1, 1, dim), "decoder_cls_token_pos": (1, 1, decoder_dim),
              "encoder_cls_token_pos": (1, 1, dim),
              "pos_embedding.0.weight": (128, 3), "pos_embedding.0.bias": (128,), "pos_embedding.2.weight": (dim, 128),
              "pos_embedding.2.bias": (dim,), "decoer_pos_embedding.0.weight": (128, 3),
              "decoer_pos_embedding.0.bias": (128,), "decoer_pos_embedding.2.weight": (decoder_dim, 128),
              "decoer_pos_embedding.2.bias": (decoder_dim,),
              "to_patch_embedding.1.weight": (dim, 640), "to_patch_embedding.1.bias": (dim,),
              "to_patch_embedding.2.weight": (dim,), "to_patch_embedding.2.bias": (dim,),
              "norm.weight": (dim,), "norm.bias": (dim,), "decoder_embed.weight": (decoder_dim, dim),
              "decoder_embed.bias": (decoder_dim,), "decoder_norm.weight": (decoder_dim,), "decoder_norm.bias": (decoder_dim,),
              "to_points.weight": (576, decoder_dim), "to_points.bias": (576,), "to_pointsnew.weight": (135, decoder_dim),
              "to_pointsnew.bias": (135,), "to_points_seg.weight": (9, decoder_dim), "to_points_seg.bias": (9,),
              "to_features.weight": (640, decoder_dim), "to_features.bias": (640,),
              "to_features_seg.weight": (10, decoder_dim), "to_features_seg.bias": (10,)}
    for prefix, count, width in (("blocks", depth, dim), ("decoder_blocks", decoder_depth, decoder_dim)):
        for i in range(count):
            b = f"{prefix}.{i}"
            shapes.update({f"{b}.norm1.weight": (width,), f"{b}.norm1.bias": (width,), f"{b}.norm2.weight": (width,),
                           f"{b}.norm2.bias": (width,), f"{b}.attn.qkv.weight": (3 * width, width),
                           f"{b}.attn.qkv.bias": (3 * width,), f"{b}.attn.proj.weight": (width, width),
                           f"{b}.attn.proj.bias": (width,), f"{b}.mlp.fc1.weight": (4 * width, width),
                           f"{b}.mlp.fc1.bias": (4 * width,), f"{b}.mlp.fc2.weight": (width, 4 * width),
                           f"{b}.mlp.fc2.bias": (width,)})
    generator = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=generator) for k, s in shapes.items()}


def test_official_meshmae_weights_load_into_mesh_mae_exactly():
    official = meshmae_official_state()
    model = mesh_mae()
    model.load_state_dict(meshmae_to_maekit(official), strict=True)
    state = model.state_dict()
    assert torch.equal(state["decoder.pos_mlp.2.weight"], official["decoer_pos_embedding.2.weight"])
    assert torch.equal(state["decoder.to_vertices.bias"], official["to_pointsnew.bias"])
    assert torch.equal(state["encoder.patch_embed.1.weight"], official["to_patch_embedding.2.weight"])
    assert torch.equal(state["encoder.blocks.11.attn.qkv.bias"], official["blocks.11.attn.qkv.bias"])
    with pytest.raises(CheckpointError, match="not part of the MeshMAE Mesh_mae layout"):
        meshmae_to_maekit({**official, "classifier.0.weight": torch.zeros(1)})


def test_augmentation_scales_geometry_normals_follow_and_zero_is_identity(meshes):
    mesh = meshes[1]
    assert torch.equal(MeshAugment(scale_std=0.0, deform=0.0)(mesh), mesh)
    torch.manual_seed(0)
    moved = MeshAugment(scale_std=0.3)(mesh)
    before, after = mesh[:16, :, CORNERS].reshape(-1, 3), moved[:16, :, CORNERS].reshape(-1, 3)
    scale = (after.max(0).values - after.min(0).values) / (before.max(0).values - before.min(0).values)
    assert torch.allclose(after, before * scale, atol=1e-5) and not torch.allclose(scale, torch.ones(3), atol=0.01)
    assert (moved[16:] == mesh[16:]).all()  # padding untouched
    # the moved vertex normals are the inverse-transpose map of the old ones: still perpendicular
    # to the surface: normal · (face edge) keeps its sign pattern — here: face normals from corners
    # agree in direction with the mean of the moved vertex normals
    corners = moved[:16, :, CORNERS].reshape(-1, 3, 3)
    face_normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    mean_vertex_normal = moved[:16, :, NORMALS].reshape(-1, 3, 3).mean(1)
    assert (torch.nn.functional.cosine_similarity(face_normals, mean_vertex_normal) > 0.5).float().mean() > 0.95
    deformed = MeshAugment(scale_std=0.0, deform=0.2)(mesh)
    assert not torch.allclose(deformed[:16, :, CORNERS], mesh[:16, :, CORNERS])
    assert torch.allclose(deformed[:16, :, NORMALS].reshape(-1, 3).norm(dim=1), torch.ones(16 * 64 * 3), atol=1e-5)
