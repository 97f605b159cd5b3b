"""Commands: run."""

from transfergrid.cli.app import app, console, data_app, models_app  # noqa: F401
