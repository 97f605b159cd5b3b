"""The typer application and the one place where user errors become exit status 2."""

from __future__ import annotations

import logging
import sys
import warnings

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from transfergrid.errors import UserError

app = typer.Typer(
    name="transfergrid",
    help="Cross-task x cross-language transfer studies with parameter-efficient fine-tuning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Benchmarks: list, check and show items.", no_args_is_help=True)
models_app = typer.Typer(help="Models: bundled models and their cache.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

# No emoji codes: a cell label such as "belebele:id:" must print as written, not as an emoji.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # PEFT asks transformers 5 for a deprecated attribute on every adapter load: noise users can't act on.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    # transformers 5 renames `past_key_values` to `cache`; the old name is the one every supported
    # release accepts, so the scoring engine keeps it.
    warnings.filterwarnings("ignore", message="`past_key_values` is deprecated", category=FutureWarning)
    for noisy in ("urllib3", "filelock", "httpx", "matplotlib", "PIL", "fsspec", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.showwarning = _library_warning


def _library_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning raised by a library (PEFT, transformers, ...) is a debug line (`--verbose`),
    not text between our log lines: users cannot act on it, and what matters we log ourselves."""
    logging.getLogger("transfergrid.warnings").debug("%s: %s (%s:%s)", category.__name__, message, filename, lineno)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; a UserError prints one line and exits 2, no traceback. The
    commands are registered on `app` by the package's `__init__` (it imports `commands`)."""
    try:
        # Non-standalone click returns a typer.Exit's code instead of raising it.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        if isinstance(exc, _click_errors("UsageError")):
            exc.show()
            sys.exit(2)
        if isinstance(exc, _click_errors("ClickException")):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _click_errors(name: str) -> tuple[type, ...]:
    """click's exception class `name`, and typer's vendored copy of it (typer >= 0.2x ships its own
    click as `typer._click`, whose errors are not click's)."""
    import click

    kinds = [getattr(click.exceptions, name)]
    vendored = getattr(getattr(typer, "_click", None), "exceptions", None)
    if vendored is not None and hasattr(vendored, name):
        kinds.append(getattr(vendored, name))
    return tuple(kinds)
