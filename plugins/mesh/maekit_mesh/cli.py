"""``maekit mesh-preprocess`` (any meshes → packed cache), ``maekit mesh-eval`` (classification
with majority voting, or segmentation, fine-tuned from a config's encoder) and ``maekit
mesh-convert`` (the official MeshMAE checkpoint → maekit's layout)."""
from __future__ import annotations

import click

from maekit.cli.support import cfg_options_option, default_work_dir, fail, load_command_config, write_metrics

__all__ = ["mesh_preprocess", "mesh_eval", "mesh_convert"]


@click.command("mesh-preprocess")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The cache folder to write.")
@click.option("--layout", type=click.Choice(["auto", "maps", "remesh"]), default="auto", show_default=True,
              help="maps: already-remeshed MAPS meshes; remesh: any mesh; auto: MAPS when the face order is.")
@click.option("--base-faces", default=96, show_default=True, help="Patches per remeshed mesh (its base faces).")
@click.option("--max-patches", default=256, show_default=True, help="Patches every packed mesh is padded to.")
@click.option("--skip-invalid", is_flag=True, help="List meshes that cannot be processed instead of stopping.")
@click.option("--normalise/--no-normalise", default=True, show_default=True,
              help="Centre each mesh and scale it into the unit sphere before remeshing.")
def mesh_preprocess(root: str, out: str, layout: str, base_faces: int, max_patches: int, skip_invalid: bool,
                    normalise: bool) -> None:
    """Remesh (or read as MAPS) and pack every mesh under ROOT (.obj/.off/.ply/.stl; a beside-lying
    .json's sub_labels come along) into OUT/<relative path>.npz + manifest.json, read by the mesh
    datasets with cache=OUT."""
    from maekit_mesh.data import write_cache
    from maekit_mesh.remesh import MeshError

    try:
        counts = write_cache(root, out, layout, base_faces, max_patches, skip_invalid, log=click.echo,
                             normalise=normalise)
    except (MeshError, ValueError) as error:
        fail(str(error))
    click.echo(f"wrote {counts['written']} meshes to {out} ({counts['skipped']} skipped)")


@click.command("mesh-eval")
@click.argument("config")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="Pre-trained weights (default: random init).")
@click.option("--task", type=click.Choice(["classification", "segmentation"]), default="classification",
              show_default=True)
@click.option("--work-dir", help="Checkpoints, logs and metrics.json of the fine-tuning.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the metrics JSON here too.")
@cfg_options_option
def mesh_eval(config: str, checkpoint: str | None, task: str, work_dir: str | None, out: str | None,
              cfg_options: tuple[str, ...], more_cfg_options: tuple[str, ...]) -> None:
    """Fine-tune the config's encoder for classification (``finetune`` section; accuracy per mesh
    and majority-voted over each shape's remeshed variants) or part segmentation (``segmentation``
    section; per-face accuracy)."""
    from maekit.engine import train
    from maekit.eval.finetune import finetune_config
    from maekit.registry import build
    from maekit_mesh.evaluate import classification_report, segmentation_accuracy

    cfg = load_command_config(config, cfg_options + more_cfg_options)
    section_name = "finetune" if task == "classification" else "segmentation"
    if not cfg.get(section_name):
        fail(f"config {config} has no '{section_name}' section (num_classes, data, test, schedule)")
    if task == "segmentation":
        cfg.finetune = cfg.segmentation
    work_dir = work_dir or default_work_dir(config) + f"_{task}"
    try:
        runner = train(finetune_config(cfg, checkpoint), work_dir)
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        test_set = build("dataset", cfg.finetune["test"])
        report = classification_report if task == "classification" else segmentation_accuracy
        metrics = report(model.model, test_set)
    except KeyError as error:
        fail(f"config {config}: the {section_name} section lacks {error} (num_classes, data, test, schedule)")
    except (ValueError, FloatingPointError, RuntimeError) as error:
        fail(str(error))
    write_metrics({**metrics, "task": task, "checkpoint": checkpoint,
                    "final_loss": float(runner.message_hub.get_scalar("train/loss").current())}, out)


@click.command("mesh-convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
def mesh_convert(src: str, dst: str) -> None:
    """Convert the official MeshMAE pre-training checkpoint (``Mesh_mae.state_dict()``, a ``.pkl``
    saved by torch) into ``mesh_mae``'s layout; DST by suffix: ``.safetensors`` or a weights-only
    ``.pth``. Loading never runs pickled code."""
    from maekit.io.checkpoint import CheckpointError, load_state_dict, save_state_dict
    from maekit_mesh.interop import meshmae_to_maekit

    try:
        state = meshmae_to_maekit(load_state_dict(src))
    except (CheckpointError, ValueError) as error:
        fail(f"{src}: {error}")
    save_state_dict(state, dst)
    click.echo(f"wrote {len(state)} tensors in maekit's layout to {dst}")
