"""The maekit hooks of maekit-pointcloud. Components are registered by dotted path, so listing
them imports neither torch nor open3d."""
from __future__ import annotations

from pathlib import Path

from maekit.hookspecs import hookimpl, standard_hooks

COMPONENTS: list[tuple[str, str, str]] = [
    ("model", "point_mae", "maekit_pointcloud.model:point_mae"),
    ("model", "mae3d", "maekit_pointcloud.model:mae3d"),
    ("model", "point_classifier", "maekit_pointcloud.evaluate:point_classifier"),
    ("patchifier", "point_groups", "maekit_pointcloud.model:PointGroupPatchifier"),
    ("masker", "point_random_mask", "maekit_pointcloud.model:PointRandomMasker"),
    ("masker", "point_block_mask", "maekit_pointcloud.model:PointBlockMasker"),
    ("encoder", "point_transformer_encoder", "maekit_pointcloud.model:PointTransformerEncoder"),
    ("decoder", "point_group_decoder", "maekit_pointcloud.model:PointGroupDecoder"),
    ("decoder", "point_folding_decoder", "maekit_pointcloud.model:FoldingDecoder"),
    ("target", "point_group_target", "maekit_pointcloud.model:PointGroupTarget"),
    ("target", "point_completion_target", "maekit_pointcloud.model:CompletionTarget"),
    ("loss", "point_masked_chamfer", "maekit_pointcloud.model:MaskedChamferLoss"),
    ("loss", "point_completion_chamfer", "maekit_pointcloud.model:CompletionChamferLoss"),
    ("transform", "point_cloud_augment", "maekit_pointcloud.data:PointCloudAugment"),
    ("transform", "point_cloud_eval_transform", "maekit_pointcloud.data:PointCloudEvalTransform"),
    ("dataset", "point_cloud_folder", "maekit_pointcloud.data:PointCloudFolder"),
    ("dataset", "shapenet55", "maekit_pointcloud.data:ShapeNet55"),
    ("dataset", "point_cloud_archive", "maekit_pointcloud.data:PointCloudArchive"),
    ("dataset", "modelnet40", "maekit_pointcloud.data:ModelNet40"),
    ("dataset", "point_cloud_h5", "maekit_pointcloud.data:PointCloudH5"),
    ("dataset", "scanobjectnn", "maekit_pointcloud.data:ScanObjectNN"),
    ("dataset", "point_cloud_demo_shapes", "maekit_pointcloud.demo_data:DemoShapes"),
]


maekit_register, maekit_config_dirs, maekit_demos, maekit_commands = standard_hooks(
    COMPONENTS,
    config_dir=Path(__file__).parent / "configs",
    demos={"pointcloud": "maekit_pointcloud.demo:run_pointcloud_demo"},
    commands=["maekit_pointcloud.cli:pointcloud_eval", "maekit_pointcloud.cli:pointcloud_convert"],  # click only; loaded when maekit asks
)


@hookimpl
def maekit_config_keys() -> dict:
    """The config sections this plugin's commands read, with their keys."""
    return {"svm": ["train", "test", "c"]}
