"""Training with mmengine's Runner. Importing this package registers maekit's runner model,
sampler, hooks and optimiser wrapper in mmengine's registries; the changes to mmengine's
behaviour (maekit's registries as scope ``maekit``, weights-only checkpoint loading, atomic
writes) are made by :func:`install`, which :func:`build_runner` calls."""
from maekit.engine import fsdp, hooks, optim, registries, safety, sampler, schedule, streaming  # noqa: F401  (registration side effects)
from maekit.engine.model import RunnerModel
from maekit.engine.train import build_runner, effective_lr, load_config, runner_config, train

__all__ = ["RunnerModel", "build_runner", "effective_lr", "install", "load_config", "runner_config", "train"]


def install() -> None:
    """Install maekit's registries and checkpoint-safety fixes into mmengine (idempotent)."""
    registries.install()
    safety.install()
