"""``python -m maekit`` runs the ``maekit`` command."""
from maekit.cli import main

main()
