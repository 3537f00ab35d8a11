"""``maekit demo bootmae`` / ``maekit demo sdae``: the method and plain MAE pre-trained at the same
budget on the digits, each probed against its random init (core's side-by-side demo).
``maekit demo distill``: a tiny MAE teacher trained first, then DMAE and TinyMIM students from it and
the same student as plain MAE, each probed against its random init."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_bootmae_demo", "run_sdae_demo", "run_distill_demo", "DISTILL_STUDENTS"]


def run_bootmae_demo(out_dir: str | Path, config: str = "bootmae_demo_digits", max_iters: int | None = None,
                     seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """BootMAE beside MAE; ``metrics.json`` in ``out_dir``, pictures in ``bootmae/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "bootmae", max_iters, seed, amp, log)


def run_sdae_demo(out_dir: str | Path, config: str = "sdae_demo_digits", max_iters: int | None = None,
                  seed: int = 0, amp: str = "off", log: Any = print) -> dict[str, Any]:
    """SdAE beside MAE; ``metrics.json`` in ``out_dir``, pictures in ``sdae/`` and ``mae/``."""
    from maekit.eval.demo import run_demo_beside_mae

    return run_demo_beside_mae(out_dir, config, "sdae", max_iters, seed, amp, log)


#: the distillation demo's students, each against its random init: DMAE, TinyMIM, MILAN (the MAE
#: teacher standing in for CLIP), MimCo (standing in for MoCo v3), and the same student trained as
#: plain MAE at the same budget
DISTILL_STUDENTS = {"dmae": "dmae_demo_digits", "tinymim": "tinymim_demo_digits", "milan": "milan_demo_digits",
                    "mimco": "mimco_demo_digits", "mae_student": "mae_student_demo_digits"}


def run_distill_demo(out_dir: str | Path, config: str = "mae_demo_digits", max_iters: int | None = None, seed: int = 0,
                     amp: str = "off", log: Any = print, students: dict[str, str] | None = None) -> dict[str, Any]:
    """``maekit demo distill``: train the teacher first — core's tiny MAE on the digits
    (``config``; no MAE-L can be fetched here) — then DMAE, TinyMIM, MILAN and MimCo students of half
    its width from its checkpoint, and the same student as plain MAE, at one budget; probe each against
    its random init (core's demo per student, in ``out_dir/<student>/``) and the teacher too.
    ``metrics.json`` holds every figure, prefixed by the student's name."""
    import time

    from maekit.eval.demo import run_demo
    from maekit.io.checkpoint import write_json

    started = time.perf_counter()
    out_dir = Path(out_dir)
    teacher = run_demo(out_dir / "teacher", config, max_iters, seed, amp, log)
    overrides = {"model.teacher.checkpoint": teacher["checkpoint"], "model.teacher.layout": "maekit"}
    metrics: dict[str, Any] = {f"teacher_{key}": value for key, value in teacher.items() if "accuracy" in key}
    for name, config in (students or DISTILL_STUDENTS).items():
        found = run_demo(out_dir / name, config, max_iters, seed, amp, log,
                         overrides=overrides if name != "mae_student" else None)
        metrics.update({f"{name}_{key}": value for key, value in found.items()
                        if "accuracy" in key or key in ("final_loss", "seconds", "reconstructions")})
    metrics.update({"teacher_checkpoint": teacher["checkpoint"], "seed": seed,
                    "seconds": round(time.perf_counter() - started, 1)})
    write_json(out_dir / "metrics.json", metrics)
    log("linear probe (random init in brackets): " + "; ".join(
        f"{name} {metrics[f'{name}_probe_accuracy_pretrained']:.3f} ({metrics[f'{name}_probe_accuracy_random_init']:.3f})"
        for name in (students or DISTILL_STUDENTS)) + f"; teacher {metrics['teacher_probe_accuracy_pretrained']:.3f}")
    return metrics
