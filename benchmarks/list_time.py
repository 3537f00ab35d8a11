"""`maekit list` wall time against `python -c "import torch"`, each in a fresh process, alternating,
median of repeats. Listing must not import torch: core and plugins register by dotted path.

    python benchmarks/list_time.py --quick
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating_medians, machine_description  # noqa: E402

CONTENDERS = {
    "maekit list": [sys.executable, "-m", "maekit.cli", "list"],
    "maekit list --json": [sys.executable, "-m", "maekit.cli", "list", "--json"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def run_quietly(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    # the warm-up run of each warms the file cache
    medians = alternating_medians({name: partial(run_quietly, command) for name, command in CONTENDERS.items()},
                                  repeats)
    torch_import = medians["python -c 'import torch'"]
    for name, seconds in medians.items():
        print(f"{name:28} {seconds:6.2f} s   ratio to import torch {seconds / torch_import:5.2f}")
    if args.out:
        args.out.write_text(json.dumps({"machine": machine_description(), "median_seconds": medians,
                                        "repeats": repeats}, indent=2))


if __name__ == "__main__":
    main()
