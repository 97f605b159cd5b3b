"""`transfergrid data list | check | show` through typer's CliRunner."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transfergrid.cli import commands
from transfergrid.cli.app import main

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(args, capsys):
    """Runs the app through main(), which turns a UserError into one line and exit status 2."""
    with pytest.raises(SystemExit) as info:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_list_shows_every_benchmark_and_language(data_dir, capsys):
    code, out, _ = run(["data", "list", "--data-dir", str(data_dir)], capsys)
    assert code == 0
    for text in ("arc_challenge", "truthfulqa_mc1", "belebele", "zh-s", "mgsm", "hellaswag", "test 1170"):
        assert text in out


def test_check_quickstart(data_dir, capsys):
    code, out, _ = run(["data", "check", str(EXAMPLES / "quickstart.toml"), "--data-dir", str(data_dir)], capsys)
    assert code == 0
    assert "arc_challenge:es" in out and "truthfulqa_mc1:zh" in out and "all 6 cells ok" in out


def test_check_fails_with_one_line(tmp_path, data_dir, capsys):
    study = tmp_path / "s.toml"
    study.write_text('name = "s"\n[[models]]\nid = "m"\nsource = "bundled:x"\n'
                     '[grid]\ntasks = ["global_mmlu_lite"]\nlanguages = ["en", "tl"]\n'
                     '[splits]\ntest = 500\n', encoding="utf-8")
    code, out, err = run(["data", "check", str(study), "--data-dir", str(data_dir)], capsys)
    assert code == 2
    assert "global_mmlu_lite:tl" in out
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "fewer than the 215 train + 500 test" in err.replace("\n", "")


def test_check_missing_study_file(capsys):
    code, _, err = run(["data", "check", "nope.toml"], capsys)
    assert code == 2 and "study file not found" in err


def test_show_items_as_json(data_dir):
    result = runner.invoke(commands.data_cmd.data_app, ["show", "arc_challenge", "es", "--split", "test",
                                                        "--id", "Mercury_SC_415719", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["id"] == "Mercury_SC_415719" and record["gold"] == 0 and len(record["choices"]) == 4


def _show(data_dir, *extra, tty=False) -> str:
    """`transfergrid data show` in a child process whose stdout is a pipe, or a pseudo-terminal."""
    args = [sys.executable, "-m", "transfergrid", "data", "show", "arc_challenge", "es", "--split", "test",
            "--limit", "3", "--data-dir", str(data_dir), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    if not tty:
        return subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait() == 0, proc.stderr.read()
    return re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode().replace("\r\n", "\n"))  # bold keys


def _documents(text: str) -> list:
    decoder, docs, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
        while at < len(text) and text[at].isspace():
            at += 1
    return docs


def test_show_writes_json_lines_to_a_pipe_and_indents_on_a_terminal(data_dir):
    lines = _show(data_dir).splitlines()
    assert len(lines) == 3 and [json.loads(line)["lang"] for line in lines] == ["es"] * 3
    pretty = _show(data_dir, "--pretty")  # asked for: indented even in a pipe
    assert len(pretty.splitlines()) > 3 and '\n  "id": ' in pretty
    assert _documents(pretty) == [json.loads(line) for line in lines]
    on_tty = _show(data_dir, tty=True)
    assert '\n  "id": ' in on_tty and _documents(on_tty) == [json.loads(line) for line in lines]
    assert _show(data_dir, "--lines", tty=True).splitlines() == lines  # asked for: one object per line


def test_show_prompt(data_dir):
    result = runner.invoke(commands.data_cmd.data_app, ["show", "belebele", "id", "--index", "0", "--prompt",
                                                        "--format", "numbers", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "\n1. " in result.output and "Answer:" in result.output and "* " in result.output


@pytest.mark.parametrize("args, message", [
    (["show", "arc_challenge", "xx"], "unknown language 'xx'"),
    (["show", "arc_challenge", "es", "--id", "nope"], "no item with id 'nope'"),
    (["show", "hellaswag", "es"], "data.sources.hellaswag"),
    (["show", "arc_challenge", "es", "--prompt", "--chat-template"], "needs --model"),
])
def test_show_errors(data_dir, capsys, args, message):
    code, _, err = run(["data", *args, "--data-dir", str(data_dir)], capsys)
    assert code == 2 and message in err.replace("\n", " ")


def test_errors_print_as_written_without_markup_or_emoji(data_dir, capsys):
    # "belebele:id:" must not turn into an emoji, nor "[...]" into rich markup
    code, _, err = run(["data", "show", "belebele", "id", "--split", "train", "--data-dir", str(data_dir)], capsys)
    assert code == 2
    assert "error: belebele:id: unknown split 'train'" in err
