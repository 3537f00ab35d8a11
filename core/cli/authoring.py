"""``maekit`` subcommands for authors: new-plugin and check-plugin."""
from __future__ import annotations

from pathlib import Path

import click

from maekit.cli.main import main
from maekit.cli.support import fail


@main.command("new-plugin")
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False), help="Folder to write [plugins/NAME].")
@click.option("--modality", type=click.Choice(["image"]), default="image", show_default=True,
              help="Which template: the modalities core has a patchifier and bundled data for.")
def new_plugin(name: str, out: str | None, modality: str) -> None:
    """Generate a plugin skeleton: pyproject with the entry point, a package with one component,
    a method and a demo config, a README, and tests that pass once it is installed."""
    from maekit.authoring.scaffold import create_plugin, plugin_names

    try:
        target = create_plugin(name, out, modality)
    except ValueError as error:
        fail(str(error))
    names = plugin_names(name)
    click.echo(f"wrote {target}/ ({names['dist']}, package {names['package']}). Next:\n"
               f"  pip install -e {target}\n"
               f"  maekit list --plugin {names['dist']}\n"
               f"  maekit check-plugin {target}\n"
               f"  MAEKIT_PLUGINS={names['dist']} python -m pytest {Path(target) / 'tests'}")


@main.command("check-plugin")
@click.argument("path", type=click.Path(exists=True))
def check_plugin(path: str) -> None:
    """Validate a plugin folder (or one .py plugin file): entry point, hooks, component names and
    docstrings, clashes with installed plugins, configs, demos, commands, tests layout. Exits 1
    on any error."""
    from maekit.authoring.plugin_check import check_plugin as run_checks

    findings = run_checks(path)
    marks = {"ok": "✓", "warning": "!", "error": "✗"}
    for finding in findings:
        click.echo(f"{marks[finding.level]} {finding.message}")
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    click.echo(f"{errors} error(s), {warnings} warning(s)")
    if errors:
        raise SystemExit(1)
