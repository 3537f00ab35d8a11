"""Training with mmengine's Runner. Importing this package registers maekit's runner model,
sampler, hooks and optimiser wrapper with mmengine and installs the checkpoint-safety fixes."""
from mmengine.registry import MODELS as _MMENGINE_MODELS

from maekit.engine import hooks, optim, safety, sampler  # noqa: F401  (registration side effects)
from maekit.engine.model import RunnerModel
from maekit.engine.train import build_runner, effective_lr, load_config, runner_config, train

if "MaekitRunnerModel" not in _MMENGINE_MODELS.module_dict:
    _MMENGINE_MODELS.register_module(name="MaekitRunnerModel", module=RunnerModel)
safety.install()

__all__ = ["RunnerModel", "build_runner", "effective_lr", "load_config", "runner_config", "train"]
