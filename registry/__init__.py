"""maekit's component registries.

Each kind of component (model, patchifier, masker, ...) has one flat namespace, held by a
:class:`ComponentRegistry`. The registries are plain Python: importing them touches no other
library. The training engine bridges them into mmengine's registries when it builds a Runner
(:func:`maekit.engine.registries.install`), so the Runner builds what we register
(``default_scope='maekit'``).

Every entry records its :class:`Provider` (the distribution that registered it, with its version,
or the local file). Entries may be *lazy*: registered by dotted path ``"package.module:Name"`` and
imported only when first built. That keeps ``maekit list`` free of torch imports; the one-line
summary of a lazy entry is read from the source file's docstring without importing it.

This module imports no torch.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterator

__all__ = [
    "KINDS", "Provider", "Entry", "ComponentRegistry", "DuplicateComponentError",
    "UnknownComponentError", "MODELS", "PATCHIFIERS", "MASKERS", "ENCODERS", "DECODERS",
    "TARGETS", "LOSSES", "TEACHERS", "TOKENIZERS", "DATASETS", "TRANSFORMS", "registry_for", "entries", "build", "get", "import_target",
]


class DuplicateComponentError(KeyError):
    """Two providers registered the same name in the same kind."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownComponentError(KeyError):
    """A name that no loaded provider registered."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Provider:
    """Who registered a component: a distribution (name, version) or a local file."""

    name: str
    version: str = ""
    origin: str = "distribution"  # "distribution" or "file"

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()


@dataclass
class Entry:
    """One registered component.

    ``target`` is the object itself or a lazy ``"package.module:Name"`` path.
    """

    kind: str
    name: str
    target: Any
    provider: Provider
    summary: str = ""
    _loaded: Any = field(default=None, repr=False)

    @property
    def is_lazy(self) -> bool:
        return isinstance(self.target, str)

    def load(self) -> Any:
        """Import (if lazy) and return the registered class or function."""
        if self._loaded is None:
            self._loaded = import_target(self.target) if self.is_lazy else self.target
        return self._loaded

    def one_line_summary(self) -> str:
        if self.summary:
            return self.summary
        if self.is_lazy:
            return _summary_from_source(self.target)
        return _first_line(getattr(self.target, "__doc__", None))


def import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"lazy target {target!r} must look like 'package.module:Name'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"{module_name!r} has no attribute {attr!r} (lazy target {target!r})") from None


def _first_line(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    if not doc or not doc.strip():
        return ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    sentence, dot, _ = paragraph.partition(". ")
    return sentence + dot.strip()


@lru_cache(maxsize=None)
def _docstrings_of(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    defs = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {node.name: _first_line(ast.get_docstring(node)) for node in tree.body if isinstance(node, defs)}


def _summary_from_source(target: str) -> str:
    """The first docstring line of a lazy target, read from source without importing it."""
    module_name, _, attr = target.partition(":")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return ""
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ""
    return _docstrings_of(spec.origin).get(attr, "")


class ComponentRegistry:
    """One kind's flat namespace of entries; each carries its provider and may be lazy."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        """Record an entry; the same name from another provider is an error naming both."""
        existing = self.entries.get(entry.name)
        if existing is not None:
            raise DuplicateComponentError(
                f"{self.kind} {entry.name!r} is registered twice: by {existing.provider} "
                f"and by {entry.provider}; rename one, or disable one of the plugins "
                f"(MAEKIT_DISABLE_PLUGINS)")
        self.entries[entry.name] = entry

    def remove_provider(self, provider: Provider) -> None:
        """Forget everything one provider registered (used when its plugin fails half-way)."""
        for name in [n for n, e in self.entries.items() if e.provider == provider]:
            del self.entries[name]

    def get(self, name: str) -> Any:
        """The registered class or function, plugins loaded first, imported if lazy."""
        return self.entry(name).load()

    def entry(self, name: str) -> Entry:
        """The entry for ``name`` in this kind, or a clear error listing what exists."""
        from maekit.plugins import ensure_plugins_loaded, providers_of_disabled

        ensure_plugins_loaded()
        if name in self.entries:
            return self.entries[name]
        known = ", ".join(sorted(self.entries)) or "(none)"
        message = f"unknown {self.kind} {name!r}; registered {self.kind}s: {known}."
        hint = providers_of_disabled(self.kind, name)
        if hint:
            message += f" {name!r} is provided by {hint}, which is installed but not loaded"
            message += " (see MAEKIT_PLUGINS / MAEKIT_DISABLE_PLUGINS)."
        raise UnknownComponentError(message)


MODELS = ComponentRegistry("model")
DATASETS = ComponentRegistry("dataset")
TRANSFORMS = ComponentRegistry("transform")
PATCHIFIERS = ComponentRegistry("patchifier")
MASKERS = ComponentRegistry("masker")
ENCODERS = ComponentRegistry("encoder")
DECODERS = ComponentRegistry("decoder")
TARGETS = ComponentRegistry("target")
LOSSES = ComponentRegistry("loss")
TEACHERS = ComponentRegistry("teacher")
TOKENIZERS = ComponentRegistry("tokenizer")

_BY_KIND: dict[str, ComponentRegistry] = {
    r.kind: r for r in (MODELS, PATCHIFIERS, MASKERS, ENCODERS, DECODERS, TARGETS, LOSSES, TEACHERS, TOKENIZERS, DATASETS,
              TRANSFORMS)
}
KINDS: tuple[str, ...] = tuple(_BY_KIND)


def registry_for(kind: str) -> ComponentRegistry:
    """The registry of one kind; a clear error for a kind that does not exist."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise ValueError(f"unknown component kind {kind!r}; expected one of {', '.join(KINDS)}") from None


def entries(kind: str | None = None) -> Iterator[Entry]:
    """Every entry (of one kind, or of all kinds), plugins loaded first."""
    from maekit.plugins import ensure_plugins_loaded

    ensure_plugins_loaded()
    for registry in ([registry_for(kind)] if kind else _BY_KIND.values()):
        yield from sorted(registry.entries.values(), key=lambda e: e.name)


def get(kind: str, name: str) -> Any:
    """The class or function registered as ``name`` in ``kind`` (imported if lazy)."""
    return registry_for(kind).get(name)


def build(kind: str, cfg: dict[str, Any] | Any) -> Any:
    """Build a component from ``{"type": name, **kwargs}`` (or a bare name); a built object passes through."""
    if isinstance(cfg, str):  # a bare registered name
        cfg = {"type": cfg}
    if not isinstance(cfg, dict):
        if cfg is None or isinstance(cfg, type):
            raise ValueError(f"a {kind} is required as a built object or a config dict with a 'type' key, got {cfg!r}")
        return cfg
    cfg = dict(cfg)
    if "type" not in cfg:
        raise ValueError(f"{kind} config {cfg!r} has no 'type' key naming a registered {kind}")
    name = cfg.pop("type")
    factory: Callable[..., Any] = get(kind, name)
    try:
        return factory(**cfg)
    except TypeError as error:
        raise TypeError(f"building {kind} {name!r} with {sorted(cfg)}: {error}") from error
