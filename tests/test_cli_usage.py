"""Usage errors (a missing option, an out-of-range value) end in click's one message and exit 2,
whichever click raised them (typer ships its own copy of click)."""

from __future__ import annotations

import pytest

from transfergrid.cli.app import main


@pytest.mark.parametrize("argv, expected", [
    (["train", "--task", "arc_challenge"], "Missing option '--model'"),
    (["train", "--model", "random:tiny", "--task", "arc_challenge", "--lang", "es", "--rank", "0",
      "--out", "unused"], "Invalid value for '--rank'"),
    (["no-such-command"], "No such command"),
])
def test_usage_errors_exit_2_with_one_message(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_library_warnings_are_debug_lines_not_output(capsys):
    """A warning raised inside a library during a command is shown only with --verbose."""
    import warnings

    from transfergrid.cli.app import _root

    def library_warning():
        warnings.warn_explicit("Already found a `peft_config` attribute", UserWarning,
                               "/site-packages/peft/tuners/tuners_utils.py", 331)

    with warnings.catch_warnings():
        _root(verbose=False)
        warnings.simplefilter("always")
        library_warning()
        assert "peft_config" not in capsys.readouterr().err
        _root(verbose=True)
        library_warning()
        assert "peft_config" in capsys.readouterr().err
    _root(verbose=False)
