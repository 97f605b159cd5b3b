"""Command-line interface: wires the stages together, nothing more."""

from transfergrid.cli.app import app, main

__all__ = ["app", "main"]
