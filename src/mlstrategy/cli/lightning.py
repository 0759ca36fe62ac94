"""The plain LightningCLI verbs: ``mlstrategy fit | validate | test | predict --config RECIPE``."""

from __future__ import annotations

from rich.console import Console


def main(argv: list[str], console: Console) -> int:
    """Hand the command line (verb first) to the toolkit's LightningCLI."""
    from mlstrategy.runs.lightning_cli import MLStrategyCLI

    MLStrategyCLI(args=argv)
    return 0
