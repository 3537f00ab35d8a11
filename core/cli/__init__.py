"""The ``maekit`` command: :mod:`maekit.cli.main` (the group, listing and introspection),
:mod:`maekit.cli.training` and :mod:`maekit.cli.authoring` (their commands, registered on import)
and :mod:`maekit.cli.support`, the public API a plugin's own commands use."""
from maekit.cli import authoring, training  # noqa: E402,F401  (register their commands on `main`)
from maekit.cli.main import main

__all__ = ["main"]
