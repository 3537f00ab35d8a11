"""``maekit demo mesh``: MeshMAE pre-trained on the procedural demo meshes (remeshed like any user
mesh), then core's probes (logistic regression and k-NN on mean-pooled patch tokens) pre-trained
versus the same encoder untrained, and the rendered meshes (patches | removed | predicted vertices)."""
from __future__ import annotations

from typing import Any

__all__ = ["run_mesh_demo"]


def run_mesh_demo(out_dir: Any, config: str = "mesh_mae_demo", **options: Any) -> dict[str, Any]:
    from maekit.eval.demo import run_demo

    return run_demo(out_dir, config=config, **options)
