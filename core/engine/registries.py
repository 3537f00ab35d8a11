"""maekit's registries seen from mmengine: a child registry with scope ``maekit`` under each of
mmengine's roots that a Runner builds from (models, datasets, transforms), whose lookups go to
maekit's registry of the same kind. Installed when a Runner is built, so that importing maekit
leaves mmengine's registries as they were."""
from __future__ import annotations

from typing import Any

from mmengine.registry import DATASETS, MODELS, TRANSFORMS, Registry

from maekit.registry import registry_for

__all__ = ["SCOPE", "MaekitScope", "install"]

SCOPE = "maekit"


class MaekitScope(Registry):
    """An mmengine registry in scope ``maekit`` that finds maekit's components of one kind, then
    (as any mmengine child does) what is registered on mmengine's own root."""

    def __init__(self, kind: str, parent: Registry) -> None:
        super().__init__(kind, parent=parent, scope=SCOPE)
        self.kind = kind

    def get(self, key: str) -> Any:
        scope, name = self.split_scope_key(key)
        registry = registry_for(self.kind)
        if scope in (None, self.scope) and name in registry.entries:
            return registry.get(name)
        return super().get(key)


def install() -> None:
    """Add the ``maekit`` scope under mmengine's model, dataset and transform roots (idempotent)."""
    for kind, root in (("model", MODELS), ("dataset", DATASETS), ("transform", TRANSFORMS)):
        if SCOPE not in root.children:
            MaekitScope(kind, root)
