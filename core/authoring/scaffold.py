"""``maekit new-plugin``: a working plugin skeleton to start a new method from.

The generated plugin is complete in the sense of PLUGINS.md's first items — package, entry point,
one component with a docstring, a method built from core's parts, a demo config, a README and
tests that pass as soon as it is installed — so the author changes what differs and keeps the
rest. Templates live in ``maekit/templates/<modality>/`` with ``{{name}}``-style placeholders.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["MODALITIES", "create_plugin", "plugin_names"]

MODALITIES = ("image",)  # the modalities core has a patchifier and bundled data for
TEMPLATES = Path(__file__).parent / "templates"


def plugin_names(name: str) -> dict[str, str]:
    """The names a plugin called ``name`` uses: distribution, package, component prefix, class."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"plugin name {name!r} must be lower_snake_case: a letter, then letters, digits or _")
    return {"name": name, "dist": f"maekit-{name.replace('_', '-')}", "package": f"maekit_{name}",
            "class": "".join(part.capitalize() for part in name.split("_"))}


def create_plugin(name: str, out_dir: str | Path | None = None, modality: str = "image") -> Path:
    """Write the plugin into ``out_dir`` (default ``plugins/<name>``); refuses to overwrite."""
    if modality not in MODALITIES:
        raise ValueError(f"modality {modality!r} has no template; available: {', '.join(MODALITIES)}")
    names = plugin_names(name)
    target = Path(out_dir) if out_dir is not None else Path("plugins") / name
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{target} already exists and is not empty; choose another folder with --out")
    source = TEMPLATES / modality
    for template in sorted(source.rglob("*.tmpl")):
        relative = template.relative_to(source).with_suffix("")  # drop .tmpl
        path = target / Path(*(part.replace("PACKAGE", names["package"]).replace("NAME", name)
                               for part in relative.parts))
        text = template.read_text()
        for key, value in names.items():
            text = text.replace("{{" + key + "}}", value)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target
