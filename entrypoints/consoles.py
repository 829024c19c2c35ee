"""The two consoles every command prints through: stdout and stderr.

Apart from `entrypoints.output` so that logging can be set up (`billrun -v`,
`billrun --help`) without importing the output module's money formatting and,
through it, pydantic: 35 ms of a 300 ms start (bench/startup.py).
"""

from __future__ import annotations

from rich.console import Console

console = Console()
errors = Console(stderr=True)
