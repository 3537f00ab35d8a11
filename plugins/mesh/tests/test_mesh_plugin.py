"""maekit-mesh as a plugin: registrations, standing alone with core, configs, folders and the cache,
training, the commands, the pictures and the demo."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

import maekit_mesh
from maekit.authoring.testing import check_listed_alone, check_registers_only_its_names, run_cli
from maekit.registry import build
from maekit_mesh import plugin
from maekit_mesh.data import MeshFolder
from maekit_mesh.remesh import MeshError

COMMANDS = ("mesh-preprocess", "mesh-eval", "mesh-convert")
TINY = {"model.embed_dim": 32, "model.depth": 1, "model.num_heads": 2, "model.decoder_embed_dim": 16,
        "model.decoder_depth": 1, "model.decoder_num_heads": 2}


def maekit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli(*args, env_extra={"MAEKIT_PLUGINS": "maekit-mesh"}, check=check)


def test_registers_only_its_own_names(fresh_registries):
    check_registers_only_its_names(fresh_registries, "maekit-mesh", maekit_mesh.__version__, plugin, ("mesh",),
                                   commands=COMMANDS)


def test_listed_alone_with_core_with_its_version_configs_demo_and_commands():
    check_listed_alone("maekit-mesh", maekit_mesh.__version__, plugin, configs=("mesh_mae_manifold40", "mesh_mae_demo"),
                       demo="mesh\tmaekit_mesh.demo:run_mesh_demo", commands=COMMANDS)


def test_paper_config_has_meshmaes_sizes_and_recipe():
    from maekit.engine import load_config

    cfg = load_config("mesh_mae_manifold40")
    model = build("model", cfg.model)
    assert (model.encoder.embed_dim, len(model.encoder.blocks), model.encoder.blocks[0].attn.num_heads) == (768, 12, 12)
    assert (model.decoder.embed.out_features, len(model.decoder.blocks), model.decoder.blocks[0].attn.num_heads) == (512, 6, 16)
    assert model.masker.mask_ratio == 0.5 and model.loss.weight == 0.5
    assert cfg.schedule.blr * cfg.data.batch_size / 256 == 1e-4 and cfg.schedule.weight_decay == 0.05
    assert cfg.schedule.max_iters == 50 * cfg.schedule.warmup_iters  # 100 epochs, 2 of warm-up
    assert cfg.data.dataset.layout == "maps" and cfg.finetune.classifier == "mesh_classifier"
    assert cfg.segmentation.classifier == "mesh_segmenter" and cfg.segmentation.num_classes == 8


def write_class_folders(root, split_folders: bool = True) -> None:
    """A Manifold40-like tree: two variants per shape; 'stand' vs 'night_stand' share a substring."""
    shapes = {"night_stand": lambda: trimesh.creation.box(extents=[1, 1, 2]).subdivide(),
              "stand": lambda: trimesh.creation.icosphere(2), "cone": lambda: trimesh.creation.cone(0.5, 1.5).subdivide()}
    for name, make in shapes.items():
        for split in ("train", "test"):
            folder = root / name / split if split_folders else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for shape in (1, 2):
                for variant in (0, 1):
                    mesh = make()
                    mesh.vertices = mesh.vertices * (1 + 0.1 * shape) + 0.01 * variant
                    mesh.export(folder / f"{name}_{shape:04d}-{variant}.obj")


def test_labels_come_from_folder_names_and_shape_ids_group_variants(tmp_path):
    write_class_folders(tmp_path)
    data = MeshFolder(tmp_path, "test", base_faces=16, max_patches=16)
    assert data.classes == ["cone", "night_stand", "stand"]
    labels = {path.parent.parent.name: data.label(i) for i, path in enumerate(data.files)}
    assert labels == {"cone": 0, "night_stand": 1, "stand": 2}
    assert sorted({data.shape_id(i) for i in range(len(data))}) == [
        "cone/cone_0001", "cone/cone_0002", "night_stand/night_stand_0001", "night_stand/night_stand_0002",
        "stand/stand_0001", "stand/stand_0002"]
    assert data[0]["inputs"].shape == (16, 64, 23)
    with pytest.raises(ValueError, match="class folders \\['chair'\\] not found"):
        MeshFolder(tmp_path, "test", classes=["chair"])


def test_bad_meshes_stop_the_dataset_unless_skipping_is_asked(tmp_path):
    folder = tmp_path / "thing"
    folder.mkdir()
    trimesh.creation.icosphere(2).export(folder / "good.obj")
    (folder / "broken.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    data = MeshFolder(tmp_path, None, base_faces=16, max_patches=16)
    with pytest.raises(MeshError, match="broken.obj: 1 usable faces"):
        data[0]
    kept = MeshFolder(tmp_path, None, base_faces=16, max_patches=16, skip_invalid=True)
    assert len(kept) == 1 and kept.files[0].name == "good.obj" and "broken.obj" in kept.skipped[0][0]


def test_preprocess_command_writes_a_cache_the_datasets_read(tmp_path):
    write_class_folders(tmp_path / "meshes")
    maekit("mesh-preprocess", str(tmp_path / "meshes"), "--out", str(tmp_path / "cache"), "--base-faces", "16",
           "--max-patches", "16")
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert len(manifest["files"]) == 24 and manifest["skipped"] == []
    direct = MeshFolder(tmp_path / "meshes", "train", base_faces=16, max_patches=16)
    cached = MeshFolder(tmp_path / "meshes", "train", base_faces=16, max_patches=16, cache=tmp_path / "cache")
    assert torch.equal(direct[3]["inputs"], cached[3]["inputs"]) and direct[3]["label"] == cached[3]["label"]
    with pytest.raises(ValueError, match="the cache was written with"):
        MeshFolder(tmp_path / "meshes", "train", base_faces=32, max_patches=32, cache=tmp_path / "cache")
    (tmp_path / "meshes" / "cone" / "train" / "bad.obj").write_text("v 0 0 0\nf 1 1 1\n")
    failed = maekit("mesh-preprocess", str(tmp_path / "meshes"), "--out", str(tmp_path / "cache2"), check=False)
    assert failed.returncode != 0 and "bad.obj" in failed.stderr


def test_every_demo_config_trains_and_the_classification_command_votes(tmp_path):
    from maekit.engine import train

    overrides = {**TINY, "schedule.max_iters": 2, "schedule.warmup_iters": 0, "checkpoint_interval": 2,
                 "log_interval": 1, "data.dataset.per_class": 2, "data.batch_size": 4}
    runner = train("mesh_mae_demo", tmp_path / "pre", overrides=overrides, device="cpu")
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar("train/loss").current()))
    write_class_folders(tmp_path / "meshes")
    demo_config = Path(maekit_mesh.__file__).parent / "configs" / "mesh_mae_demo.py"
    folders = f"type='mesh_folder', root='{tmp_path / 'meshes'}', base_faces=16, max_patches=16"
    (tmp_path / "classify.py").write_text(
        f"_base_ = ['{demo_config}']\n"
        f"finetune = dict(num_classes=3, data=dict(dataset=dict(_delete_=True, {folders}, split='train'), batch_size=4),"
        f" test=dict(_delete_=True, {folders}, split='test'), schedule=dict(max_iters=2, warmup_iters=0))\n")
    options = [f"{k}={v}" for k, v in TINY.items()]
    printed = maekit("mesh-eval", str(tmp_path / "classify.py"), "--checkpoint", str(tmp_path / "pre" / "iter_2.pth"),
                     "--work-dir", str(tmp_path / "ft"), "--out", str(tmp_path / "cls.json"), "--cfg-options", *options)
    metrics = json.loads((tmp_path / "cls.json").read_text())
    assert metrics["test_meshes"] == 12 and metrics["test_shapes"] == 6 and 0 <= metrics["voted_accuracy"] <= 1
    assert "voted_accuracy" in printed.stdout
    failed = maekit("mesh-eval", "mesh_mae_demo", "--task", "segmentation", check=False)
    assert failed.returncode != 0 and "no 'segmentation' section" in failed.stderr


def test_segmentation_command_reports_per_face_accuracy(tmp_path):
    from test_mesh_geometry import _tetrahedron

    from maekit_mesh.remesh import subdivide_patches

    mesh = subdivide_patches(*_tetrahedron(), levels=3)
    order = mesh.patches.T.reshape(-1)  # MAPS face order
    for split in ("train", "test"):
        (tmp_path / "seg" / split / "part").mkdir(parents=True)
        for k in range(2):
            path = tmp_path / "seg" / split / "part" / f"{k}.obj"
            trimesh.Trimesh(mesh.vertices * (1 + 0.1 * k), mesh.faces[order], process=False).export(path)
            labels = (mesh.vertices[mesh.faces[order]].mean(1)[:, 2] > 0.2).astype(int) + 1
            path.with_suffix(".json").write_text(json.dumps({"sub_labels": labels.tolist()}))
    demo_config = Path(maekit_mesh.__file__).parent / "configs" / "mesh_mae_demo.py"
    parts = f"type='mesh_segmentation', root='{tmp_path / 'seg'}', layout='maps', max_patches=4"
    (tmp_path / "segment.py").write_text(
        f"_base_ = ['{demo_config}']\n"
        f"segmentation = dict(_delete_=True, classifier='mesh_segmenter', num_classes=2, data=dict(dataset=dict({parts}, split='train'),"
        f" transform=dict(type='mesh_augment', scale_std=0.1), batch_size=2, num_workers=0),"
        f" test=dict({parts}, split='test'), schedule=dict(max_iters=2, warmup_iters=0, blr=1e-3))\n")
    maekit("mesh-eval", str(tmp_path / "segment.py"), "--task", "segmentation", "--work-dir", str(tmp_path / "sg"),
           "--out", str(tmp_path / "seg.json"), "--cfg-options", *[f"{k}={v}" for k, v in TINY.items()])
    metrics = json.loads((tmp_path / "seg.json").read_text())
    assert metrics["task"] == "segmentation" and metrics["test_faces"] == 2 * 256 and 0 <= metrics["face_accuracy"] <= 1


def test_convert_command_reads_the_official_checkpoint(tmp_path):
    from test_mesh_model import meshmae_official_state

    from maekit.eval.probe import load_trained_model

    torch.save(meshmae_official_state(dim=32, depth=1, decoder_dim=16, decoder_depth=1), tmp_path / "loss-0.1-10.pkl")
    maekit("mesh-convert", str(tmp_path / "loss-0.1-10.pkl"), str(tmp_path / "mesh.safetensors"))
    model = load_trained_model(dict(type="mesh_mae", embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16,
                                    decoder_depth=1, decoder_num_heads=2), tmp_path / "mesh.safetensors")
    assert model.decoder.to_vertices.weight.shape == (135, 16)
    (tmp_path / "junk.pkl").write_bytes(b"nope")
    failed = maekit("mesh-convert", str(tmp_path / "junk.pkl"), str(tmp_path / "x.pth"), check=False)
    assert failed.returncode != 0 and "junk.pkl" in failed.stderr


def test_pictures_show_patches_removed_patches_and_predicted_vertices():
    from maekit_mesh.demo_data import DemoMeshes
    from maekit_mesh.visualize import mesh_panels

    torch.manual_seed(0)
    data = DemoMeshes("test", per_class=1, base_faces=16, shapes=("torus", "box"))
    model = build("model", dict(type="mesh_mae", embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16,
                                decoder_depth=1, decoder_num_heads=2))
    rows = mesh_panels(model, torch.stack([data[0]["inputs"], data[1]["inputs"]]), size=64)
    assert len(rows) == 2 and [p.shape for p in rows[0]] == [(64, 64, 3)] * 3
    coloured, hidden, predicted = rows[0]
    grey = lambda image: ((np.abs(image.astype(int) - image[..., :1]).max(-1) < 3) & (image[..., 0] < 250)).sum()
    assert grey(hidden) > grey(coloured)  # removed patches drawn grey
    assert ((predicted[..., 0] > 180) & (predicted[..., 1] < 80)).any()  # predicted vertices as red dots


def test_demo_writes_metrics_and_picture(tmp_path):
    from maekit_mesh.demo import run_mesh_demo

    small = "dict(type='mesh_demo_shapes', per_class=2, base_faces=16, split="  # the demo, fewer meshes
    (tmp_path / "small.py").write_text(
        f"_base_ = ['{Path(maekit_mesh.__file__).parent / 'configs' / 'mesh_mae_demo.py'}']\n"
        f"data = dict(dataset=dict(per_class=2, base_faces=16))\n"
        f"probe = dict(_delete_=True, train={small}'train'), test={small}'test'), pools=('mean', 'cls'))\n")
    metrics = run_mesh_demo(tmp_path / "out", config=str(tmp_path / "small.py"), max_iters=2, log=lambda *_: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written == metrics and written["iterations"] == 2
    for key in ("probe_accuracy_pretrained", "probe_accuracy_random_init", "knn_accuracy_pretrained"):
        assert 0 <= written[key] <= 1, key


def test_a_tour_over_meshes_mixing_good_and_bad_files_trains_on_the_good_and_lists_the_bad(tmp_path):
    write_class_folders(tmp_path / "meshes", split_folders=False)
    cad = trimesh.creation.box(extents=[700.0, 90.0, 30.0])  # millimetres: normalised on the way in
    cad.export(tmp_path / "meshes" / "cone" / "part.stl")
    (tmp_path / "meshes" / "cone" / "broken.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 9\n")
    (tmp_path / "meshes" / "stand" / "junk.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    maekit("mesh-preprocess", str(tmp_path / "meshes"), "--out", str(tmp_path / "cache"), "--layout", "remesh",
           "--base-faces", "16", "--max-patches", "16", "--skip-invalid")
    skipped = {entry["file"] for entry in json.loads((tmp_path / "cache" / "manifest.json").read_text())["skipped"]}
    assert skipped == {"cone/broken.obj", "stand/junk.glb"}
    demo_config = Path(maekit_mesh.__file__).parent / "configs" / "mesh_mae_demo.py"
    folder = (f"type='mesh_folder', root='{tmp_path / 'meshes'}', split=None, layout='remesh', base_faces=16, "
              f"max_patches=16, cache='{tmp_path / 'cache'}'")
    (tmp_path / "mine.py").write_text(f"_base_ = ['{demo_config}']\ndata = dict(dataset=dict(_delete_=True, {folder}), "
                                      f"batch_size=4)\nprobe = dict(_delete_=True, train=dict({folder}), "
                                      f"test=dict({folder}), pools=('mean',))\n"
                                      f"model = dict({', '.join(f'{k[6:]}={v}' for k, v in TINY.items())})\n")
    maekit("train", str(tmp_path / "mine.py"), "--work-dir", str(tmp_path / "work"), "--device", "cpu",
           "--cfg-options", "schedule.max_iters=2", "schedule.warmup_iters=0", "checkpoint_interval=2")
    assert (tmp_path / "work" / "iter_2.pth").is_file()
    maekit("visualize", str(tmp_path / "work" / "iter_2.pth"), "--config", str(tmp_path / "mine.py"), "--out",
           str(tmp_path / "meshes.png"), "--num", "3")
    assert (tmp_path / "meshes.png").stat().st_size > 1000
    dataset = MeshFolder(tmp_path / "meshes", None, layout="remesh", base_faces=16, max_patches=16,
                         cache=tmp_path / "cache")
    assert len(dataset) == 13 and {Path(name).name for name, _ in dataset.skipped} == {"broken.obj", "junk.glb"}
    corners = dataset.files.index(tmp_path / "meshes" / "cone" / "part.stl")
    assert dataset[corners]["inputs"][..., :9].abs().max() <= 1.0 + 1e-4
