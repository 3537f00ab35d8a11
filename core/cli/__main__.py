"""``python -m maekit.cli`` runs the ``maekit`` command."""
from maekit.cli import main

main()
