"""Remeshing any mesh into explicit patches, MAPS face order, face features, packing, labels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from maekit_mesh.data import MeshSegmentation, prepare_mesh, read_face_labels
from maekit_mesh.features import CORNERS, LABEL, NORMALS, VALID, face_features, pack_mesh
from maekit_mesh.remesh import MeshError, closest_points, maps_patches, remesh, subdivide_patches


def test_face_features_of_a_hand_made_triangle():
    a, b, c = np.array([0.0, 0, 0]), np.array([2.0, 0, 0]), np.array([0.0, 1, 0])
    normals = np.array([[0.0, 0, 1], [0.0, 0.6, 0.8], [0.6, 0, 0.8]])  # vertex normals, not all along z
    features = face_features(torch.tensor(np.concatenate([a, b, c]))[None], torch.tensor(normals.reshape(-1))[None])[0]
    right, at_b = np.pi / 2, np.arctan2(1, 2)  # the angle at b: atan(1/2); at c: atan(2)
    expected = [1.0, 0, 0, 1, at_b, np.arctan2(2, 1), right, 0.8, 0.8, 1.0]
    assert np.allclose(features.numpy(), expected, atol=1e-12)
    assert at_b + np.arctan2(2, 1) + right == pytest.approx(np.pi)


def test_features_of_a_packed_mesh_equal_trimeshs_definitions():
    mesh = remesh(trimesh.creation.icosphere(subdivisions=2), base_faces=40)
    packed = torch.from_numpy(pack_mesh(mesh, max_patches=48))
    real = packed[:, 0, VALID] > 0
    computed = face_features(packed[real][..., CORNERS].double(), packed[real][..., NORMALS].double())
    surface = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    faces = mesh.patches.reshape(-1)
    dots = np.stack([(surface.vertex_normals[mesh.faces[faces, k]] * surface.face_normals[faces]).sum(1) for k in range(3)], 1)
    reference = np.concatenate([surface.area_faces[faces, None], surface.face_normals[faces],
                                np.sort(surface.face_angles[faces], 1), np.sort(dots, 1)], axis=1)
    assert np.allclose(computed.reshape(-1, 10).numpy(), reference, atol=1e-5)
    assert not real[len(mesh.patches):].any() and (packed[~real] == torch.tensor([0.0] * 22 + [-1.0])).all()


def test_subdivision_gives_64_faces_per_base_face_and_45_distinct_vertices():
    base_vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    base_faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    mesh = subdivide_patches(base_vertices, base_faces, levels=3)
    assert mesh.faces.shape == (4 * 64, 3) and mesh.patches.shape == (4, 64) and mesh.patch_vertices.shape == (4, 45)
    for p, face in enumerate(base_faces):
        corners = mesh.vertices[mesh.faces[mesh.patches[p]]]  # every child lies in its base face's plane …
        a, b, c = base_vertices[face]
        normal = np.cross(b - a, c - a)
        assert np.allclose((corners - a) @ normal, 0)
        assert np.unique(mesh.faces[mesh.patches[p]]).tolist() == mesh.patch_vertices[p].tolist()
    # … and the children tile it: areas add up, neighbouring patches share their edge's 9 vertices
    areas = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).area_faces.reshape(4, 64).sum(1)
    assert np.allclose(areas, trimesh.Trimesh(base_vertices, base_faces).area_faces)
    assert len(np.intersect1d(mesh.patch_vertices[0], mesh.patch_vertices[1])) == 9


def test_remeshing_an_icosphere_gives_the_expected_patches_on_its_surface():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=2.0)  # 1280 faces
    mesh = remesh(sphere, base_faces=80)
    assert len(mesh.patches) == 80 and len(mesh.faces) == 80 * 64
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.allclose(radii, 2.0, atol=0.02)  # every vertex was moved back onto the sphere's surface
    assert (mesh.source_faces >= 0).all() and mesh.source_faces.max() < len(sphere.faces)


def test_closest_points_are_on_the_surface_and_nearer_than_any_sample():
    box = trimesh.creation.box(extents=[2, 1, 1])
    points = np.array([[3.0, 0, 0], [0.1, 0.1, 0.0], [2, 2, 2]])
    found, triangles = closest_points(box, points)
    assert np.allclose(found, [[1, 0, 0], [0.1, 0.5, 0.0], [1, 0.5, 0.5]], atol=1e-12)
    assert triangles.shape == (3,)
    samples = trimesh.sample.sample_surface(box, 20000, seed=0)[0]
    nearest_sample = np.linalg.norm(samples[None] - points[:, None], axis=-1).min(1)
    assert (np.linalg.norm(found - points, axis=1) <= nearest_sample + 1e-12).all()


def test_maps_face_order_is_read_back_as_patches(tmp_path):
    mesh = subdivide_patches(*_tetrahedron(), levels=3)
    # SubdivNet's order: face i·P + j is the i-th child of base face j
    order = mesh.patches.T.reshape(-1)
    path = tmp_path / "maps.obj"
    trimesh.Trimesh(mesh.vertices, mesh.faces[order], process=False).export(path)
    assert maps_patches(256).tolist()[1][:3] == [1, 5, 9]
    packed = prepare_mesh(path, layout="maps", max_patches=4)
    assert np.allclose(packed[0, :, CORNERS], mesh.vertices[mesh.faces[mesh.patches[0]]].reshape(64, 9), atol=1e-6)
    with pytest.raises(MeshError, match="not a MAPS mesh"):
        prepare_mesh(_write(tmp_path / "plain.obj", trimesh.creation.icosphere(1)), layout="maps")
    auto = prepare_mesh(_write(tmp_path / "plain.obj", trimesh.creation.icosphere(2)), base_faces=20, max_patches=24)
    assert auto[:, 0, VALID].sum() == 20  # not MAPS: remeshed


def _tetrahedron():
    return np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]), np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def _write(path, mesh):
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda: trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], [[0, 1, 2]], process=False), "NaN or infinite"),
    (lambda: trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], process=False), "1 usable faces"),
    (lambda: trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], [[0, 1, 2], [0, 1, 3], [1, 2, 3], [0, 2, 3]],
                             process=False), "usable faces"),  # one degenerate face of four
    (lambda: trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [1, 1, 1]],
                             [[0, 1, 2], [1, 0, 3], [0, 1, 4], [0, 2, 5]], process=False), "non-manifold"),
])
def test_meshes_that_cannot_be_used_name_the_file(tmp_path, make, message):
    path = tmp_path / "bad.obj"
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in make().vertices)
                    + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in make().faces))
    with pytest.raises(MeshError, match=message) as error:
        prepare_mesh(path, layout="remesh", base_faces=4, max_patches=8)
    assert "bad.obj" in str(error.value)


def test_segmentation_labels_from_json_follow_the_faces(tmp_path):
    mesh = subdivide_patches(*_tetrahedron(), levels=3)
    order = mesh.patches.T.reshape(-1)
    (tmp_path / "train" / "alien").mkdir(parents=True)
    path = tmp_path / "train" / "alien" / "1.obj"
    trimesh.Trimesh(mesh.vertices, mesh.faces[order], process=False).export(path)
    labels = (np.arange(len(order)) % 4) + 1  # 1-based per face of the file
    path.with_suffix(".json").write_text(json.dumps({"raw_labels": [], "sub_labels": labels.tolist()}))
    data = MeshSegmentation(tmp_path, "train", layout="maps", max_patches=4)
    packed = data[0]["inputs"].numpy()
    assert data[0]["label"] == -1
    assert np.array_equal(packed[..., LABEL].reshape(-1), (labels - 1)[maps_patches(256).reshape(-1)])
    path.with_suffix(".json").write_text(json.dumps({"sub_labels": [0, 1]}))
    with pytest.raises(MeshError, match="1.json: 'sub_labels' must be integers ≥ 1"):
        read_face_labels(path.with_suffix(".json"))
    path.with_suffix(".json").unlink()
    with pytest.raises(ValueError, match="1.obj: no label file 1.json"):
        MeshSegmentation(tmp_path, "train")


def test_remeshed_meshes_carry_labels_through_the_nearest_original_face(tmp_path):
    path = _write(tmp_path / "box.obj", trimesh.creation.box(extents=[2, 2, 2]))
    loaded = trimesh.load(path, process=False, force="mesh")
    labels = (loaded.face_normals[:, 0] > 0.5).astype(int)  # the +x side is part 1
    packed = prepare_mesh(path, layout="remesh", base_faces=12, max_patches=12, face_labels=labels, normalise=False)
    centres = packed[..., CORNERS].reshape(12, 64, 3, 3).mean(2)
    on_side = (centres[..., 0] > 0.99) & (np.abs(centres[..., 1:]) < 0.9).all(-1)
    assert on_side.sum() > 20 and (packed[..., LABEL][on_side] == 1).all()
    assert (packed[..., LABEL][centres[..., 0] < 0.5] == 0).all()


def test_labels_stay_with_their_faces_when_repair_drops_some():
    box = trimesh.creation.box(extents=[2, 2, 2])
    labels = (box.face_normals[:, 0] > 0.5).astype(int)  # the +x side is part 1
    # a duplicate of a −x face at the front: repair drops one copy, so later labels must not shift
    duplicate = int(np.flatnonzero(box.face_normals[:, 0] < -0.5)[0])
    faces = np.concatenate([box.faces[[duplicate]], box.faces])
    mesh = trimesh.Trimesh(box.vertices, faces, process=False)
    remeshed = remesh(mesh, base_faces=12)
    carried = np.concatenate([[0], labels])[remeshed.source_faces]
    centres = remeshed.vertices[remeshed.faces].mean(1)
    assert (carried[centres[:, 0] > 0.99] == 1).all() and (carried[centres[:, 0] < 0.5] == 0).all()


def _non_manifold(path):
    mesh = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [1, 1, 1]],
                           [[0, 1, 2], [1, 0, 3], [0, 1, 4], [0, 2, 5]], process=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in mesh.vertices)
                    + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in mesh.faces))
    return path


def test_cad_scale_meshes_are_normalised_and_glb_and_flat_folders_are_read(tmp_path):
    from maekit_mesh.data import MeshFolder

    part = trimesh.creation.box(extents=[710.0, 120.0, 40.0])  # a machined part in millimetres
    part.apply_translation([300.0, -50.0, 12.0])
    _write(tmp_path / "flat" / "part.stl", part)
    _write(tmp_path / "flat" / "sphere.glb", trimesh.creation.icosphere(subdivisions=2, radius=3.0))
    folder = MeshFolder(tmp_path / "flat", split=None, layout="remesh", base_faces=12, max_patches=16)
    assert len(folder) == 2 and [folder[i]["label"] for i in range(2)] == [-1, -1]  # flat: unlabelled
    for i in range(2):
        packed = folder[i]["inputs"].numpy()
        corners = packed[packed[..., VALID] > 0][:, CORNERS].reshape(-1, 3)
        assert np.linalg.norm(corners, axis=1).max() <= 1.0 + 1e-4 and np.abs(corners).max() > 0.5, folder.files[i]
    raw = MeshFolder(tmp_path / "flat", split=None, layout="remesh", base_faces=12, max_patches=16, normalise=False)
    assert raw.files[0].name == "part.stl" and np.abs(raw[0]["inputs"].numpy()[..., CORNERS]).max() > 100  # as it is


def test_a_cache_written_with_skip_invalid_is_honoured_and_written_whole_or_not_at_all(tmp_path):
    from maekit.authoring.testing import run_cli
    from maekit_mesh.data import MeshFolder, write_cache

    _write(tmp_path / "shapes" / "box" / "a.obj", trimesh.creation.box(extents=[2, 2, 2]))
    _non_manifold(tmp_path / "shapes" / "box" / "b.obj")
    cache = tmp_path / "cache"
    result = run_cli("mesh-preprocess", str(tmp_path / "shapes"), "--out", str(cache), "--layout", "remesh",
                     "--base-faces", "12", "--max-patches", "16", "--skip-invalid",
                     env_extra={"MAEKIT_PLUGINS": "maekit-mesh"})
    assert "1 skipped" in result.stdout and "b.obj" in result.stdout
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["settings"]["normalise"] is True and [e["file"] for e in manifest["skipped"]] == ["box/b.obj"]
    dataset = MeshFolder(tmp_path / "shapes", split=None, layout="remesh", base_faces=12, max_patches=16, cache=cache)
    assert [p.name for p in dataset.files] == ["a.obj"] and "non-manifold" in dataset.skipped[0][1]
    assert dataset[0]["inputs"].shape == (16, 64, dataset[0]["inputs"].shape[-1])
    # without --skip-invalid the bad mesh stops the run, naming it, and no cache is left behind
    with pytest.raises(MeshError, match="b.obj"):
        write_cache(tmp_path / "shapes", tmp_path / "partial", layout="remesh", base_faces=12, max_patches=16)
    assert not (tmp_path / "partial").exists() and not list(tmp_path.glob(".partial-*"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a cache")
    with pytest.raises(ValueError, match="exists and is not a mesh cache"):
        write_cache(tmp_path / "shapes", tmp_path / "mine", layout="remesh", base_faces=12, max_patches=16)
