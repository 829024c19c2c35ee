"""Start-up time of the `billrun` command beside the interpreter's own.

Each command is started as a user starts it (a subprocess, output to a pipe)
`--runs` times, interleaved with the ceilings so that load changes hit all of
them alike; the figure is the median wall time. Ceilings, measured in the same
run: `python -c pass` (the interpreter), `python -c "import typer"` (the CLI
library alone) and a two-command typer app printing its rich `--help` (what any
typer CLI pays to print help). The ratio is that last ceiling over the figure
(1.0: billrun adds nothing to what typer itself costs). Target: `billrun --help` under 0.25 s.

    python bench/startup.py [--runs 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import load_average, machine_info, source_revision

PYTHON = sys.executable
BILLRUN = str(Path(sys.executable).with_name("billrun"))
TARGET_S = 0.25

# The least a typer CLI with rich help can do: two commands, `--help` rendered.
_HELLO = (
    "import typer\n"
    "app = typer.Typer(rich_markup_mode='rich')\n"
    "app.command('hello')(lambda: None)\n"
    "app.command('bye')(lambda: None)\n"
    "app()"
)
CEILINGS = {
    "python -c pass": [PYTHON, "-c", "pass"],
    "python -c 'import typer'": [PYTHON, "-c", "import typer"],
    "typer hello --help": [PYTHON, "-c", _HELLO, "--help"],
}
# `--help` of a command imports that command's module but opens no database.
COMMANDS = {
    "billrun --help": [BILLRUN, "--help"],
    "billrun invoice list --help": [BILLRUN, "invoice", "list", "--help"],
    "billrun schedule list --help": [BILLRUN, "schedule", "list", "--help"],
}


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one start."""
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user's Python: .pyc files cached
    cpu_before = _children_cpu()
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench(runs: int) -> dict[str, Any]:
    load_before = load_average()
    samples: dict[str, list[float]] = {name: [] for name in [*CEILINGS, *COMMANDS]}
    cpu: dict[str, list[float]] = {name: [] for name in samples}
    everything = {**CEILINGS, **COMMANDS}
    for argv in everything.values():  # warm the page cache and .pyc files
        timed(argv)
    for _ in range(runs):
        for name, argv in everything.items():
            wall, used = timed(argv)
            samples[name].append(wall)
            cpu[name].append(used)
    medians = {name: round(statistics.median(values), 4) for name, values in samples.items()}
    typer_ceiling = medians["typer hello --help"]
    help_s = medians["billrun --help"]
    return {
        "benchmark": "startup",
        "runs": runs,
        "billrun_help_s": help_s,
        "target_s": TARGET_S,
        "met": help_s < TARGET_S,
        "ceiling_typer_help_s": typer_ceiling,
        "ceiling_import_typer_s": medians["python -c 'import typer'"],
        "ceiling_python_s": medians["python -c pass"],
        "ratio": round(typer_ceiling / help_s, 2),
        "median_s": medians,
        "min_s": {name: round(min(values), 4) for name, values in samples.items()},
        # CPU time depends less on what else the machine runs than wall time does.
        "median_cpu_s": {name: round(statistics.median(v), 4) for name, v in cpu.items()},
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "source": source_revision(),
        "machine": machine_info(),
    }


def human(r: dict[str, Any]) -> str:
    lines = [
        f"billrun --help: {r['billrun_help_s'] * 1000:.0f} ms median of {r['runs']} "
        f"(target {r['target_s'] * 1000:.0f} ms: {'met' if r['met'] else 'NOT met'}); "
        f"ceiling typer hello --help {r['ceiling_typer_help_s'] * 1000:.0f} ms, "
        f"ratio {r['ratio']:.2f}",
    ]
    for name, seconds in r["median_s"].items():
        lines.append(
            f"  {seconds * 1000:6.0f} ms  (min {r['min_s'][name] * 1000:4.0f}, "
            f"CPU {r['median_cpu_s'][name] * 1000:4.0f})  {name}"
        )
    lines.append(
        f"load average {r['load_average_before']} before, {r['load_average_after']} after "
        f"({r['machine']['cores']} cores)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="starts per command (default: 15)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    result = bench(args.runs)
    print(json.dumps(result, indent=2) if args.json else human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
