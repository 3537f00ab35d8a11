"""Training with mmengine's Runner. Importing this package registers maekit's runner model,
sampler, hooks and optimiser wrapper with mmengine and installs the checkpoint-safety fixes."""
from maekit.engine import hooks, optim, safety, sampler  # noqa: F401  (registration side effects)
from maekit.engine.model import RunnerModel
from maekit.engine.train import build_runner, effective_lr, load_config, runner_config, train

safety.install()

__all__ = ["RunnerModel", "build_runner", "effective_lr", "load_config", "runner_config", "train"]
