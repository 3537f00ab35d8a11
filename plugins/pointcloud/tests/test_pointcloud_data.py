"""Readers of the field's formats, written by the tests in the exact on-disk layouts, their
normalisation, transforms and the errors that name the bad file."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from maekit.registry import build
from maekit_pointcloud.data import (
    ModelNet40,
    PointCloudArchive,
    PointCloudAugment,
    PointCloudEvalTransform,
    PointCloudFolder,
    PointCloudH5,
    ScanObjectNN,
    ShapeNet55,
    read_cloud,
)


def cloud(seed: int, count: int = 64, columns: int = 3) -> np.ndarray:
    points = np.random.default_rng(seed).normal(size=(count, columns))
    points[:, :3] = points[:, :3] * [2.0, 1.0, 0.5] + [3.0, 0.0, 0.0]  # off-centre, not round
    return points


def assert_unit_sphere(points: torch.Tensor) -> None:
    assert torch.allclose(points.mean(0), torch.zeros(3), atol=1e-5)
    assert points.norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-5)


def test_shapenet55_layout_labels_and_pc_norm(tmp_path):
    (tmp_path / "shapenet_pc").mkdir()
    names = ["02691156-aaa.npy", "02691156-bbb.npy", "04379243-ccc.npy"]
    for i, name in enumerate(names):
        np.save(tmp_path / "shapenet_pc" / name, cloud(i).astype(np.float32))
    (tmp_path / "train.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "test.txt").write_text("04379243-missing.npy\n")
    data = ShapeNet55(tmp_path, "train")
    assert len(data) == 3 and [data[i]["label"] for i in range(3)] == [0, 0, 1] and data.classes == ["02691156", "04379243"]
    raw = torch.from_numpy(cloud(2).astype(np.float32))
    expected = (raw - raw.mean(0)) / (raw - raw.mean(0)).norm(dim=1).max()
    assert torch.allclose(data[2]["inputs"], expected, atol=1e-6)
    assert_unit_sphere(data[0]["inputs"])
    with pytest.raises(ValueError, match="missing.npy: listed in the split but not found"):
        ShapeNet55(tmp_path, "test")[0]
    (tmp_path / "test.txt").write_text("no_dash_here.npy\n")
    with pytest.raises(ValueError, match="test.txt: expected lines '<synset>-<model>.npy'"):
        ShapeNet55(tmp_path, "test")


def test_modelnet40_text_tree_with_lists_and_two_word_classes(tmp_path):
    classes = ["airplane", "night_stand", "table"]
    (tmp_path / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
    shapes = {"train": ["airplane_0001", "night_stand_0003", "table_0002"], "test": ["night_stand_0101"]}
    for split, names in shapes.items():
        (tmp_path / f"modelnet40_{split}.txt").write_text("\n".join(names) + "\n")
        for i, name in enumerate(names):
            folder = tmp_path / name.rpartition("_")[0]
            folder.mkdir(exist_ok=True)
            rows = cloud(i, 50, 6)  # xyz + normals, comma-separated as the resampled files
            (folder / f"{name}.txt").write_text("\n".join(",".join(f"{v:.6f}" for v in row) for row in rows) + "\n")
    data = ModelNet40(tmp_path, "train")
    assert [data[i]["label"] for i in range(3)] == [0, 1, 2] and data[1]["inputs"].shape == (50, 3)
    assert ModelNet40(tmp_path, "test")[0]["label"] == 1
    (tmp_path / "modelnet40_test.txt").write_text("sofa_0001\n")
    with pytest.raises(ValueError, match="modelnet40_test.txt: 'sofa_0001' is not '<class>_<number>'"):
        ModelNet40(tmp_path, "test")


def test_hdf5_archives_of_dgcnn_and_scanobjectnn(tmp_path):
    (tmp_path / "h5").mkdir()
    for part, count in (("ply_data_train0.h5", 3), ("ply_data_train1.h5", 2), ("ply_data_test0.h5", 1)):
        with h5py.File(tmp_path / "h5" / part, "w") as handle:
            handle["data"] = np.stack([cloud(i) for i in range(count)]).astype(np.float32)
            handle["label"] = np.arange(count, dtype=np.int64)[:, None]  # (N, 1) as DGCNN's files
    train = build("dataset", dict(type="point_cloud_h5", root=str(tmp_path / "h5"), files="ply_data_train*.h5"))
    assert len(train) == 5 and [train[i]["label"] for i in range(5)] == [0, 1, 2, 0, 1]
    assert len(PointCloudH5(tmp_path, str(tmp_path / "h5" / "ply_data_test0.h5"))) == 1  # an absolute path
    assert_unit_sphere(train[4]["inputs"])
    folder = tmp_path / "scan" / "main_split"
    folder.mkdir(parents=True)
    for stem in ("training", "test"):
        with h5py.File(folder / f"{stem}_objectdataset_augmentedrot_scale75.h5", "w") as handle:
            handle["data"] = np.stack([cloud(7), cloud(8)]).astype(np.float32)
            handle["label"] = np.array([4, 14])  # (N,) as ScanObjectNN's
    scan = ScanObjectNN(tmp_path / "scan", "test", variant="PB_T50_RS")
    assert [scan[i]["label"] for i in range(2)] == [4, 14]
    assert torch.allclose(scan[0]["inputs"], torch.from_numpy(cloud(7).astype(np.float32)))  # read as stored
    with pytest.raises(ValueError, match="main_split_nobg/training_objectdataset.h5: ScanObjectNN OBJ_ONLY train file not found"):
        ScanObjectNN(tmp_path / "scan", "train", variant="OBJ_ONLY")
    with h5py.File(tmp_path / "h5" / "broken.h5", "w") as handle:
        handle["points"] = np.zeros((1, 4, 3))
    with pytest.raises(ValueError, match="broken.h5: no dataset 'data'"):
        PointCloudH5(tmp_path / "h5", "broken.h5")


def test_mae3d_archive_and_any_cloud_file_a_user_has(tmp_path):
    import open3d

    np.savez(tmp_path / "shapenet.npz", data=np.stack([cloud(0), cloud(1)]).astype(np.float32))
    archive = PointCloudArchive(tmp_path / "shapenet.npz")
    assert len(archive) == 2 and archive[1]["label"] == -1
    with pytest.raises(ValueError, match="shapenet.npz: no key 'points'"):
        PointCloudArchive(tmp_path / "shapenet.npz", key="points")
    for name, _label in (("chair", 0), ("lamp", 1)):
        (tmp_path / "mine" / name).mkdir(parents=True)
    points = cloud(3)
    written = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(points))
    for suffix in (".ply", ".pcd", ".xyz"):
        open3d.io.write_point_cloud(str(tmp_path / "mine" / "chair" / f"a{suffix}"), written)
    np.save(tmp_path / "mine" / "lamp" / "b.npy", points)
    (tmp_path / "mine" / "lamp" / "c.txt").write_text("\n".join(" ".join(map(str, row)) for row in points))
    folder = PointCloudFolder(tmp_path / "mine")
    assert folder.classes == ["chair", "lamp"] and [folder[i]["label"] for i in range(5)] == [0, 0, 0, 1, 1]
    for i in range(5):
        assert torch.allclose(folder[i]["inputs"], folder[3]["inputs"], atol=1e-5), folder.samples[i][0]
    assert np.allclose(read_cloud(tmp_path / "mine" / "chair" / "a.ply"), points, atol=1e-5)


@pytest.mark.parametrize("content, message", [
    (np.zeros((0, 3)), "the cloud is empty"),
    (np.array([[0.0, 1, 2], [np.nan, 0, 0]]), "1 points have NaN or infinite coordinates"),
    (np.zeros((4, 2)), "expected points as P×3"),
    (np.ones((5, 3)), "all 5 points coincide"),
])
def test_bad_clouds_name_the_file(tmp_path, content, message):
    np.save(tmp_path / "bad.npy", content)
    with pytest.raises(ValueError, match=message) as error:
        PointCloudFolder(tmp_path)[0]
    assert "bad.npy" in str(error.value)


def test_too_few_points_for_the_groups_is_refused_with_the_file(tmp_path):
    np.save(tmp_path / "small.npy", cloud(0, 10))
    with pytest.raises(ValueError, match="small.npy: 10 points, fewer than the 32 needed"):
        PointCloudFolder(tmp_path, min_points=32)[0]
    with pytest.raises(ValueError, match="fewer than num_points=64"):
        PointCloudEvalTransform(64)(torch.rand(10, 3))


def test_augmentation_is_mae3ds_scale_translate_shuffle_and_seeded():
    points = torch.rand(300, 3)
    augment = PointCloudAugment(num_points=100)
    torch.manual_seed(0)
    first = augment(points)
    torch.manual_seed(0)
    assert torch.equal(augment(points), first) and first.shape == (100, 3)
    torch.manual_seed(1)
    plain = PointCloudAugment(num_points=None, scale=(2.0, 2.0), translate=0.0, shuffle=False)(points)
    assert torch.allclose(plain, points * 2)
    spans = []
    for seed in range(50):
        torch.manual_seed(seed)
        moved = PointCloudAugment(num_points=None, shuffle=False)(points)
        spans.append(((moved - moved.mean(0)) / (points - points.mean(0)))[0])  # per-axis scale
    spans = torch.stack(spans)
    assert spans.min() >= 2 / 3 - 1e-4 and spans.max() <= 3 / 2 + 1e-4
    fps = PointCloudEvalTransform(10)(points)
    assert torch.equal(fps, PointCloudEvalTransform(10)(points)) and torch.equal(fps[0], points[0])


def write_binary_ply(path, points: np.ndarray, cut: int = 0) -> None:
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\nproperty float x\nproperty float y\n"
              f"property float z\nend_header\n").encode()
    data = points.astype("<f4").tobytes()
    path.write_bytes(header + data[: len(data) - cut])


def test_truncated_ply_and_pcd_files_are_refused_with_the_counts(tmp_path):
    points = cloud(0, 200)
    write_binary_ply(tmp_path / "whole.ply", points)
    assert np.allclose(read_cloud(tmp_path / "whole.ply"), points, atol=1e-5)
    write_binary_ply(tmp_path / "half.ply", points, cut=100 * 12)  # what a cut download leaves
    with pytest.raises(ValueError, match=r"half.ply: truncated: the header declares 200 vertices .* about 100 vertices"):
        read_cloud(tmp_path / "half.ply")
    rows = "\n".join(" ".join(f"{v:.4f}" for v in row) for row in points[:120])
    (tmp_path / "cut_ascii.ply").write_text("ply\nformat ascii 1.0\nelement vertex 200\nproperty float x\nproperty float y\n"
                                            f"property float z\nend_header\n{rows}\n1.0 2.")
    with pytest.raises(ValueError, match="cut_ascii.ply: truncated: the header declares 200 vertices, the file holds 121 rows"):
        read_cloud(tmp_path / "cut_ascii.ply")
    header = "VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 200\nHEIGHT 1\nPOINTS 200\n"
    (tmp_path / "cut.pcd").write_bytes((header + "DATA binary\n").encode() + points.astype("<f4").tobytes()[:1000])
    with pytest.raises(ValueError, match=r"cut.pcd: truncated: the header declares 200 points \(2400 bytes\)"):
        read_cloud(tmp_path / "cut.pcd")
    (tmp_path / "normals.pcd").write_text("VERSION .7\nFIELDS normal_x normal_y normal_z\nSIZE 4 4 4\nTYPE F F F\n"
                                          "COUNT 1 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA ascii\n0 0 1\n")
    with pytest.raises(ValueError, match=r"normals.pcd: the PCD has fields \['normal_x', 'normal_y', 'normal_z'\], no x"):
        read_cloud(tmp_path / "normals.pcd")


def test_organized_sensor_pcds_drop_their_nan_returns_and_other_clouds_refuse_them(tmp_path):
    grid = cloud(1, 6 * 8).astype(np.float32)
    grid[::5] = np.nan  # missing returns
    header = ("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 8\nHEIGHT 6\nVIEWPOINT 0 0 0 1 0 0 0\n"
              "POINTS 48\nDATA binary\n")
    (tmp_path / "organized.pcd").write_bytes(header.encode() + grid.tobytes())
    valid = grid[np.isfinite(grid).all(axis=1)]
    assert np.allclose(read_cloud(tmp_path / "organized.pcd"), valid)
    with pytest.raises(ValueError, match="10 points have NaN"):
        read_cloud(tmp_path / "organized.pcd", drop_invalid=False)
    np.save(tmp_path / "scan.npy", grid)
    with pytest.raises(ValueError, match="scan.npy: 10 points have NaN"):
        read_cloud(tmp_path / "scan.npy")
    assert len(read_cloud(tmp_path / "scan.npy", drop_invalid=True)) == 38


def test_skip_serves_good_clouds_and_lists_the_bad_ones_and_huge_clouds_are_subsampled_first(tmp_path):
    np.save(tmp_path / "a.npy", cloud(0))
    write_binary_ply(tmp_path / "b.ply", cloud(1, 50), cut=24)
    np.save(tmp_path / "c.npy", cloud(2, 10))
    folder = PointCloudFolder(tmp_path, on_error="skip", min_points=32)
    served = [folder[i]["inputs"] for i in range(3)]
    assert [len(points) for points in served] == [64, 64, 64]  # b and c replaced by the next good one
    assert sorted(name.rsplit("/", 1)[-1] for name in folder.skipped_files) == ["b.ply", "c.npy"]
    assert "fewer than the 32 needed" in folder.skipped_files[str(tmp_path / "c.npy")]
    with pytest.raises(ValueError, match="fewer than num_points=64; set the dataset's min_points=64"):
        PointCloudEvalTransform(64)(torch.rand(10, 3))
    from maekit.data.views import AugmentedView, TransformedView

    plain = PointCloudFolder(tmp_path, on_error="skip")  # c.npy passes the dataset (no min_points) ...
    for view in (TransformedView(plain, PointCloudEvalTransform(32)), AugmentedView(plain, PointCloudEvalTransform(32))):
        with pytest.raises(ValueError, match=r"c.npy: a cloud has 10 points, fewer than num_points=32"):
            view[2]  # ... and the transform's error names its file
    huge = torch.rand(100_000, 3)
    sampled = PointCloudEvalTransform(32)(huge)
    assert sampled.shape == (32, 3) and torch.equal(sampled, PointCloudEvalTransform(32)(huge))  # seeded


def test_demo_data_streams_from_webdataset_shards(tmp_path):
    # point clouds (N×3) written by maekit shards' writer read back exactly, then 2 streamed iterations
    from maekit.authoring.testing import streams_from_shards

    checkpoint = streams_from_shards("point_mae_demo", tmp_path)
    assert checkpoint["meta"]["iter"] == 2
