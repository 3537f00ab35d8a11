"""Shared helpers for core tests. maekit's own fixtures (fresh_registries, plugin_host,
register_plugin) come from the pytest plugin ``maekit.authoring.testing``."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def make_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write an installed-looking distribution (module + dist-info with a ``maekit`` entry point)
    into a folder on sys.path, as pip would, and return that folder."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(dist_name: str, version: str, module: str, source: str) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[maekit]\n{module} = {module}\n")
        return site

    return make


def tiny_mae(**overrides):
    """A small ViT MAE for fast tests (32 px, patch 8, 16 tokens)."""
    from maekit.registry import build

    cfg = dict(type="mae", size=None, encoder_name="vit_tiny_patch16_224", img_size=32, patch_size=8,
               encoder=dict(embed_dim=64, depth=2, num_heads=4), decoder_embed_dim=32, decoder_depth=1,
               decoder_num_heads=4)
    cfg.update(overrides)
    return build("model", cfg)
