"""Command-line interface: wires the stages together, nothing more."""

# `commands` imports every command module, each adding its commands to `app`: done here, not inside
# `main` (the command modules import `app`, so that would be an import cycle), for any use of the CLI.
from transfergrid.cli import commands  # noqa: F401
from transfergrid.cli.app import app, main

__all__ = ["app", "main"]
