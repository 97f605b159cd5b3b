"""Bad input, measured (issue 13, point 5): mutated study files, benchmark files and results CSVs
through the CLI, with every outcome counted.

    PYTHONPATH=src python benchmarks/fuzz_inputs.py                  # 1,000 + 500 + 500 cases
    PYTHONPATH=src python benchmarks/fuzz_inputs.py --studies 30 --benchmarks 20 --results 20

Everything is written under a temporary folder (never into the repository or /work/shared/data):
a small data root with the real files' rows in the real layout (`build_data_root`), a small
simulated grid and a subsample of the released results. Each case runs in-process through
`cli.app.main` (fast); a sample of cases is run again through a real `python -m transfergrid`
subprocess, whose exit status must agree.

A case passes when every command ends with exit 0, or with exit 2 and exactly one `error:` line
that names the file, item, field or cell, and nothing half-written (an output folder absent or
empty). Commands never train or load a model: `data check`, `data show`, `data list`,
`analyze --results`, and `run` only for a study that `data check` rejected (it must stop before
any work: `execute` and model fingerprints are replaced by stand-ins that would show it did not).
In-process, figures are rendered at low resolution (no SVG) to keep `analyze` fast; the drawing code
runs in full, and the subprocess sample renders them for real.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRANSFERGRID_DATA", REPO / ".." / "shared" / "data")).resolve()
EXAMPLES = REPO / "examples"
OUTCOMES = ("exit 0", "exit 2", "traceback", "known crash", "other")
CELL = re.compile(r"\b[a-z][a-z0-9_]*:[A-Za-z][A-Za-z_-]*\b")  # a TASK:LANG cell named in a message
FIELD = re.compile(r"\b(splits|grid|training|evaluation|relatedness|models|data)\.[a-z_]+"  # a study field
                   r"|\b(test_items|train_items_per_language) = ")
KNOWN_CRASH = "variance REML LinAlgError (analysis/variance.py; fixed on the release branch)"


# --- outcomes -------------------------------------------------------------------------------------
@dataclass
class Result:
    code: int | None
    out: str
    err: str
    tb: str | None = None


@dataclass
class Case:
    category: str
    index: int
    what: str  # the mutation, in words
    path: Path  # the mutated file
    root: Path | None = None  # the case's own data root (benchmark cases)
    commands: list[list[str]] = field(default_factory=list)
    outcome: str = ""
    detail: str = ""


def invoke(argv: list[str]) -> Result:
    """`main(argv)` in-process, stdout and stderr captured; an escaping exception is a traceback."""
    from transfergrid.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    tb = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # noqa: BLE001 - what the fuzzer is here to find
            code, tb = None, traceback.format_exc()
    return Result(code, out.getvalue(), err.getvalue(), tb)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def judge(res: Result, hints: list[str], out_dir: Path | None = None) -> tuple[str, str]:
    """(outcome, detail) of one command."""
    if res.tb is not None or "Traceback (most recent call last)" in res.err:
        tb = res.tb or res.err
        last = tb.strip().splitlines()[-1]
        if "LinAlgError" in tb and "analysis/variance.py" in tb:
            return "known crash", last
        return "traceback", (_where(tb) + last)[:300]
    if res.code == 0:
        return "exit 0", ""
    lines = error_lines(res.err)
    if res.code != 2:
        return "other", f"exit {res.code}: {(lines or res.err.strip().splitlines() or [''])[-1][:300]}"
    if len(lines) != 1:
        return "other", f"exit 2 with {len(lines)} error lines: {res.err.strip()[:300]!r}"
    if out_dir is not None and out_dir.exists() and any(out_dir.iterdir()):
        return "other", f"exit 2 but {out_dir} was written: {sorted(p.name for p in out_dir.iterdir())}"
    if not any(h.search(lines[0]) if isinstance(h, re.Pattern) else h in lines[0] for h in hints):
        return "other", f"exit 2 without naming the file, item or field: {lines[0][:300]}"
    return "exit 2", lines[0][:300]


def _where(tb: str) -> str:
    frames = re.findall(r'File "([^"]*transfergrid[^"]*)", line (\d+)', tb)
    return f"{Path(frames[-1][0]).name}:{frames[-1][1]}: " if frames else ""


def worst(outcomes: list[tuple[str, str]]) -> tuple[str, str]:
    rank = {"traceback": 0, "other": 1, "known crash": 2, "exit 2": 3, "exit 0": 4}
    return min(outcomes, key=lambda o: rank[o[0]])


PNG_1PX = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63"
                        "f8ffff3f0005fe02fea7d6a4280000000049454e44ae426082")


class ReachedWork(Exception):
    """`run` got past validation to the executor: it must not for a study `data check` rejected."""


@contextlib.contextmanager
def fast_mode():
    """Stand-ins for the slow or model-loading steps (see the module docstring)."""
    import transfergrid.execute as execute_mod
    import transfergrid.models as models_mod
    import transfergrid.report.figures as figures_mod
    from transfergrid.report import style

    def execute(*args, **kwargs):
        raise ReachedWork("run reached the executor")

    def save_figure(fig, figures_dir, name):  # the figure is built in full, not rendered
        folder = Path(figures_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        path.write_bytes(PNG_1PX)
        style.pyplot().close(fig)
        return [path]

    saved = (execute_mod.execute, models_mod.model_fingerprint, figures_mod.save_figure)
    execute_mod.execute = execute
    models_mod.model_fingerprint = lambda source, revision=None: "0" * 16
    figures_mod.save_figure = save_figure
    try:
        yield
    finally:
        execute_mod.execute, models_mod.model_fingerprint, figures_mod.save_figure = saved


# --- a minimal TOML writer (the fuzzer writes values of any type where the schema wants one) --------
def _tkey(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _tval(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_tval(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_tkey(str(k))} = {_tval(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v), ensure_ascii=False)


def toml_dumps(data: dict) -> str:
    def table(v):
        return isinstance(v, dict)

    def aot(v):
        return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)

    lines = [f"{_tkey(k)} = {_tval(v)}" for k, v in data.items() if not table(v) and not aot(v)]
    for k, v in data.items():
        if table(v):
            lines += ["", f"[{_tkey(k)}]"] + [f"{_tkey(str(kk))} = {_tval(vv)}" for kk, vv in v.items()]
        elif aot(v):
            for d in v:
                lines += ["", f"[[{_tkey(k)}]]"] + [f"{_tkey(str(kk))} = {_tval(vv)}" for kk, vv in d.items()]
    return "\n".join(lines) + "\n"


# --- structural mutations of nested data (studies and JSON rows) ----------------------------------
def paths_of(obj, prefix=()):
    """Every (path, value) below obj (dict keys and list indices)."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        yield prefix + (k,), v
        yield from paths_of(v, prefix + (k,))


def get_parent(obj, path):
    for k in path[:-1]:
        obj = obj[k]
    return obj


def typo(rng: random.Random, key: str) -> str:
    ops = [lambda s: s + "s", lambda s: s[:-1] if len(s) > 1 else s + "x", lambda s: s.upper(),
           lambda s: s.replace("_", "-") if "_" in s else s + "_", lambda s: s[1:] + s[0],
           lambda s: " " + s, lambda s: s + "\u00e9"]
    new = rng.choice(ops)(str(key))
    return new if new != key else key + "_x"


def other_value(rng: random.Random, v):
    """A value of another type, or the same type out of range."""
    choices = ["text", "", " ", -1, 0, 10**12, -(10**12), 0.5, 1.5, -0.25, float("nan"), float("inf"), True,
               False, [], [1, "a"], {}, {"x": 1}, datetime.date(1979, 5, 27), "\u00e9\u4e2d", "a\u0000b",
               "x" * 5000]
    if isinstance(v, bool):
        choices += ["true", 1, 0]
    elif isinstance(v, (int, float)):
        choices += [str(v), -v, v * 1000, -1e-9, 2**63, float(v) + 0.5]
    elif isinstance(v, str):
        choices += [v.upper(), v + "?", v[:1], 42, [v], {v: v}, "bundled:no-such-model", "en_", "zz"]
    elif isinstance(v, list):
        choices += [v + v, v[:1], v[::-1], [None], [[1]], ",".join(map(str, v)), v + ["nope"]]
    elif isinstance(v, dict):
        choices += [[v], {k: None for k in v}, "table"]
    return rng.choice(choices)


def mutate_tree(rng: random.Random, data, extra_keys=("unknown", "lora_rank", "lr", "seed", "model")) -> str:
    """One mutation of a nested dict in place; returns what it did."""
    paths = [p for p, _ in paths_of(data)]
    if not paths:
        data["unknown"] = 1
        return "unknown key at the top level"
    path = rng.choice(paths)
    parent, key = get_parent(data, path), path[-1]
    where = ".".join(map(str, path))
    op = rng.choice(["drop", "rename", "retype", "retype", "unknown", "duplicate", "empty"])
    if op == "drop":
        del parent[key]
    elif op == "rename" and isinstance(parent, dict):
        parent[typo(rng, key)] = parent.pop(key)
    elif op == "unknown" and isinstance(parent, dict):
        parent[rng.choice(extra_keys)] = other_value(rng, parent[key])
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[key], default=str)))
    elif op == "empty":
        parent[key] = type(parent[key])() if isinstance(parent[key], (list, dict, str)) else None
        if parent[key] is None:
            del parent[key]
    else:
        op = "retype"
        parent[key] = other_value(rng, parent[key])
    return f"{op} {where}"


def mutate_text(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    """Byte-level damage: truncation, encodings, stray bytes, deleted characters."""
    op = rng.choice(["truncate", "utf16", "latin1", "bom", "byte", "delete", "empty", "nul", "crlf"])
    if op == "truncate":
        return raw[: rng.randrange(max(1, len(raw)))], f"truncated at a random byte of {len(raw)}"
    if op == "utf16":
        return raw.decode("utf-8").encode("utf-16"), "re-encoded as UTF-16"
    if op == "latin1":
        return raw.decode("utf-8").encode("latin-1", errors="replace") + b"\xe9", "re-encoded as Latin-1"
    if op == "bom":
        return b"\xef\xbb\xbf" + raw, "UTF-8 byte-order mark"
    if op == "byte":
        i = rng.randrange(max(1, len(raw)))
        return raw[:i] + b"\xff\xfe" + raw[i:], "invalid UTF-8 bytes inserted"
    if op == "delete":
        specials = [i for i, b in enumerate(raw) if b in b'[]{}"=,:\t\n']
        i = rng.choice(specials) if specials else 0
        return raw[:i] + raw[i + 1:], f"deleted the character {raw[i:i + 1]!r} at byte {i}"
    if op == "empty":
        return b"", "empty file"
    if op == "nul":
        i = rng.randrange(max(1, len(raw)))
        return raw[:i] + b"\x00" + raw[i:], "NUL byte inserted"
    return raw.replace(b"\n", b"\r\n"), "CRLF line endings"


# --- the data root: the real files' rows, few of them, in the real layout ----------------------------
def _arc_key(row):
    return str(row.get("id", "")).rsplit("/", 1)[-1]


# (files aligned by a key: the same items in every language, first `n` shared keys kept)
DATA_GROUPS = [
    *[([f"okapi/m_arc/{lang}_{s}.json" for lang in ("es", "id", "zh")] + [f"ai2_arc/ARC-Challenge-{a}.jsonl"], _arc_key, 40)
      for s, a in (("train", "Train"), ("validation", "Dev"), ("test", "Test"))],
    *[([f"okapi/m_mmlu/{lang}_{s}.json" for lang in ("es", "zh")] + [f"mmlu_en/{e}.jsonl"], lambda r: r.get("id"), 30)
      for s, e in (("dev", "dev"), ("val", "validation"))],
    *[([f"global_mmlu_lite_sea/global_mmlu_lite_{lang}_{s}.jsonl" for lang in ("en", "id", "zh")],
       lambda r: r["metadata"]["sample_id"], 40) for s in ("dev", "test")],
    ([f"belebele_sea/eval/{lang}_belebele.jsonl" for lang in ("en", "id", "ms", "vi", "th", "zh-s")],
     lambda r: r.get("id"), 120),
    *[([f"xcopa/{lang}/{s}.{lang}.jsonl" for lang in ("id", "vi")] + [f"copa_en/{s}.jsonl"], lambda r: r.get("idx"), 30)
      for s in ("val", "test")],
    *[([f"xstorycloze/spring2016.val.{lang}.tsv.split_20_80_{s}.tsv" for lang in ("en", "es")],
       lambda r: r[0], 30) for s in ("train", "eval")],
    ([f"mgsm/mgsm_{lang}.tsv" for lang in ("en", "es")], None, 30),
]
WHOLE = ["okapi/m_truthfulqa/es_validation.json", "okapi/m_truthfulqa/id_validation.json",
         "okapi/m_truthfulqa/zh_validation.json", "truthfulqa_en/mc_task.json", "copa_en/train.jsonl",
         *[f"belebele_sea/examples/{lang}_belebele.jsonl" for lang in ("en", "id", "ms", "vi", "th", "zh-s")]]


def _rows(path: Path):
    """(rows, writer) of one raw file: JSON list, JSONL or TSV (rows as parsed, written back alike)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text), lambda rows: json.dumps(rows, ensure_ascii=False, indent=1)
    if path.suffix == ".jsonl":
        return ([json.loads(x) for x in text.split("\n") if x.strip()],
                lambda rows: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    lines = [x for x in text.split("\n") if x.strip()]
    header = lines[0] if "xstorycloze" in str(path) else None
    body = [x.split("\t") for x in (lines[1:] if header else lines)]
    return body, lambda rows: "".join(x + "\n" for x in ([header] if header else []) + ["\t".join(r) for r in rows])


def build_data_root(root: Path, shared: Path = SHARED) -> Path:
    """A small data root under `root` (temporary; never the repository)."""
    for files, key, n in DATA_GROUPS:
        parsed = [_rows(shared / f) for f in files]
        if key is None:
            keep = [rows[:n] for rows, _ in parsed]
        else:
            shared_keys = set.intersection(*({key(r) for r in rows} for rows, _ in parsed))
            first = [key(r) for r in parsed[0][0] if key(r) in shared_keys][:n]
            wanted = set(first)
            keep = [[r for r in rows if key(r) in wanted] for rows, _ in parsed]
        for f, (_, write), rows in zip(files, parsed, keep):
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            (root / f).write_text(write(rows), encoding="utf-8")
    for f in WHOLE:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / f, root / f)
    return root


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def benchmark_of(rel: str) -> tuple[str, str]:
    """(task, language) of a raw file of the data root."""
    name = Path(rel).name
    if rel.startswith(("okapi/m_arc", "ai2_arc")):
        return "arc_challenge", "en" if rel.startswith("ai2") else name.split("_")[0]
    if rel.startswith(("okapi/m_mmlu", "mmlu_en")):
        return "mmlu", "en" if rel.startswith("mmlu_en") else name.split("_")[0]
    if "truthfulqa" in rel:
        return "truthfulqa_mc1", "en" if rel.startswith("truthfulqa_en") else name.split("_")[0]
    if rel.startswith("global_mmlu"):
        return "global_mmlu_lite", name.split("_")[3]
    if rel.startswith("belebele"):
        return "belebele", name.split("_")[0]
    if rel.startswith(("xcopa", "copa_en")):
        return "xcopa", "en" if rel.startswith("copa") else Path(rel).parent.name
    if rel.startswith("xstorycloze"):
        return "xstorycloze", name.split(".")[2]
    return "mgsm", Path(rel).stem.split("_", 1)[1]


# --- studies ----------------------------------------------------------------------------------------
def fitted(name: str, study: dict) -> dict:
    """An example study made to fit the small data root (so that many mutants get past the data):
    local data only, its languages, small splits, at most three models."""
    from transfergrid.profiles import apply_profile

    s = json.loads(json.dumps(apply_profile(study), default=str))  # a profile's fields spelled out
    s.pop("profile", None)
    s.pop("data", None)
    s.get("splits", {}).pop("manifests", None)  # the small data root has the items, not the manifests
    s["models"] = s["models"][:3]
    if "grid" in s:
        s["grid"]["tasks"] = [t for t in s["grid"]["tasks"] if t != "hellaswag"]
        langs = ["en", "id", "zh"] if "global_mmlu_lite" in s["grid"]["tasks"] else ["en", "es", "zh"]
        s["grid"]["languages"] = [x for x in s["grid"]["languages"] if x in langs] or langs
        s["splits"] = {**s.get("splits", {}), "train": 20, "test": 10}
        if "per_task" in s["splits"]:
            s["splits"]["per_task"] = {"global_mmlu_lite": {"train": 20}}
    if "relatedness" in s:
        r = s["relatedness"]
        if "arb_Arab" in r["source_languages"]:  # no Arabic Belebele offline: the same shape, other languages
            r["source_languages"], r["groups"] = ["id", "ms"], {"related": ["vi"], "control": ["th", "en"]}
            r["scripts"] = {"vi": "Latn", "th": "Thai", "en": "Latn"}
        else:
            r["groups"] = {g: [x for x in v if x in ("ms", "vi", "th", "en", "zh-s")] for g, v in r["groups"].items()}
            r["scripts"] = {k: v for k, v in r.get("scripts", {}).items() if k in ("ms", "vi", "th", "en", "zh-s")}
        r["test_items"], r["train_items_per_language"] = 8, 20
    return s


STUDY_EXTRA_KEYS = ("unknown", "lora_rank", "lr", "seed", "model", "task", "language", "tasks", "dir", "epoch")


def mutate_study(rng: random.Random, base: dict) -> tuple[bytes, str]:
    study = json.loads(json.dumps(base, default=str))
    if rng.random() < 0.15:
        raw, what = mutate_text(rng, toml_dumps(study).encode("utf-8"))
        return raw, f"broken TOML: {what}"
    if rng.random() < 0.05:
        text = toml_dumps(study)
        line = rng.choice([x for x in text.splitlines() if "=" in x])
        return (text + line + "\n").encode("utf-8"), f"duplicate key line {line[:40]!r}"
    whats = [mutate_tree(rng, study, STUDY_EXTRA_KEYS) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    return toml_dumps(study).encode("utf-8"), "; ".join(whats)


def study_cases(rng: random.Random, n: int, work: Path, data_root: Path) -> list[Case]:
    bases = {p.stem: fitted(p.stem, tomllib.loads(p.read_text(encoding="utf-8"))) for p in sorted(EXAMPLES.glob("*.toml"))}
    names = sorted(bases)
    cases = []
    for i in range(n):
        name = names[i % len(names)]
        raw, what = mutate_study(rng, bases[name])
        path = work / "studies" / f"{i:04d}-{name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        cases.append(Case("study", i, f"{name}: {what}", path))
    return cases


def run_study_case(case: Case, data_root: Path) -> None:
    out = case.path.with_suffix(".out")
    hints = [case.path.name, CELL, FIELD, str(data_root)]
    check = ["data", "check", str(case.path), "--data-dir", str(data_root)]
    case.commands = [check]
    res = invoke(check)
    results = [judge(res, hints)]
    if res.code == 2:
        run = ["run", str(case.path), "--out", str(out), "--data-dir", str(data_root), "--no-progress", "--no-report"]
        case.commands.append(run)
        res_run = invoke(run)
        if res_run.tb and "ReachedWork" in res_run.tb:
            results.append(("other", "run got past validation although data check rejected the study"))
        else:
            results.append(judge(res_run, hints, out))
    case.outcome, case.detail = worst(results)


# --- benchmark files ----------------------------------------------------------------------------------
ANSWER_KEYS = ("answer", "answerKey", "label", "AnswerRightEnding")
BAD_ANSWERS = ["E", "Z", "e", 4, 7, -1, "5", "", None, "AB", 1.5, "0", "one", True, [0]]


def mutate_rows(rng: random.Random, rows: list, tsv: bool, header: list[str] | None) -> str:
    """One row-level mutation in place (rows of dicts, or lists of TSV cells)."""
    op = rng.choice(["field", "field", "answer", "answer", "duplicate", "empty", "delete", "shape", "all"])
    if not rows or op == "empty":
        rows.clear()
        return "empty split (no rows)"
    i = rng.randrange(len(rows))
    if op == "duplicate":
        rows.insert(rng.randrange(len(rows)), json.loads(json.dumps(rows[i])))
        return f"duplicate of row {i}"
    if op == "delete":
        keep = sorted(rng.sample(range(len(rows)), rng.randrange(len(rows))))
        rows[:] = [rows[j] for j in keep]
        return f"rows deleted ({len(keep)} kept)"
    if tsv:
        cols = rows[i]
        j = rng.randrange(len(cols))
        if op == "answer":
            j = header.index("AnswerRightEnding") if header and "AnswerRightEnding" in header else len(cols) - 1
            cols[j] = str(rng.choice(["0", "3", "x", "", "1.5", "-1", "۲", "1 2"]))
            return f"row {i}: answer column set to {cols[j]!r}"
        if op == "shape":
            if rng.random() < 0.5:
                cols.append("extra")
            else:
                del cols[j]
            return f"row {i}: {len(cols)} columns"
        cols[j] = rng.choice(["", " ", "\u00a0", "x" * 3000, "\\t", '"', "NaN"])
        return f"row {i}: column {j} set to {cols[j][:10]!r}"
    if op == "shape":
        rows[i] = rng.choice([1, "row", None, [], [rows[i]], True])
        return f"row {i} is not an object: {rows[i]!r}"[:80]
    if op == "answer":
        keys = [p for p, _ in paths_of(rows[i]) if p[-1] in ANSWER_KEYS]
        if keys:
            path = rng.choice(keys)
            value = rng.choice(BAD_ANSWERS)
            get_parent(rows[i], path)[path[-1]] = value
            return f"row {i}: answer {'.'.join(map(str, path))} = {value!r}"
    if op == "all" and isinstance(rows[i], dict) and rows[i]:
        key = rng.choice(sorted(rows[i]))
        for r in rows:
            if isinstance(r, dict):
                r.pop(key, None)
        return f"field {key!r} dropped from every row"
    if not isinstance(rows[i], (dict, list)):
        rows[i] = {}
    return f"row {i}: " + mutate_tree(rng, rows[i], ("extra", "id", "answer", "choices", "label"))


def mutate_data_file(rng: random.Random, path: Path) -> tuple[bytes, str]:
    raw = path.read_bytes()
    if rng.random() < 0.35:
        return mutate_text(rng, raw)
    rows, write = _rows(path)
    tsv = path.suffix == ".tsv"
    header = raw.decode("utf-8").split("\n", 1)[0].split("\t") if tsv and "xstorycloze" in str(path) else None
    if path.suffix == ".json" and not isinstance(rows, list):
        what = mutate_tree(rng, rows)
        return json.dumps(rows, ensure_ascii=False).encode("utf-8"), what
    what = mutate_rows(rng, rows, tsv, header)
    if tsv:
        rows[:] = [[str(c) for c in r] if isinstance(r, list) else [str(r)] for r in rows]
    try:
        return write(rows).encode("utf-8"), what
    except (TypeError, ValueError):  # a row-level mutation JSON cannot hold (nan keys...): fall back to text
        return mutate_text(rng, raw)


def data_study(task: str, root: Path, work: Path) -> Path:
    """A small transfer study over every language of `task` in the data root."""
    from transfergrid.data import get_benchmark

    path = work / "data-studies" / f"{task}.toml"
    if not path.exists():
        langs = get_benchmark(task).languages(root)
        study = {"name": f"fuzz-{task}", "seeds": [1], "models": [{"id": "m", "source": "tiny"}],
                 "grid": {"tasks": [task], "languages": langs},
                 "splits": {"train": 8, "test": 6, "per_task": {task: {"train": 8}}}}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(toml_dumps(study), encoding="utf-8")
    return path


def benchmark_cases(rng: random.Random, n: int, work: Path, base_root: Path) -> list[Case]:
    files = [p.relative_to(base_root).as_posix() for p in data_files(base_root)]
    cases = []
    for i in range(n):
        rel = files[i % len(files)] if i < len(files) else rng.choice(files)
        root = work / "data" / f"{i:04d}"
        shutil.copytree(base_root, root, copy_function=os.link)  # hard links: only the mutant is new
        target = root / rel
        raw, what = mutate_data_file(rng, base_root / rel)
        target.unlink()
        target.write_bytes(raw)
        cases.append(Case("benchmark", i, f"{rel}: {what}", target, root))
    return cases


def run_benchmark_case(case: Case, work: Path, base_root: Path) -> None:
    from transfergrid.data import get_benchmark

    root = case.root
    rel = case.path.relative_to(root).as_posix()
    task, lang = benchmark_of(rel)
    hints = [case.path.name, CELL, re.compile(rf"\b{task}\b.*\b{re.escape(lang)}\b")]
    case.commands = [["data", "show", task, lang, "--split", split, "--limit", "2", "--data-dir", str(root)]
                     for split in get_benchmark(task).splits(lang, base_root)]
    case.commands += [["data", "check", str(data_study(task, base_root, work)), "--data-dir", str(root)],
                      ["data", "list", "--data-dir", str(root)]]
    case.outcome, case.detail = worst([judge(invoke(c), hints) for c in case.commands])


# --- results CSVs -------------------------------------------------------------------------------------
RESULT_MODELS = ["Llama-3.2-1B-Instruct", "Qwen2.5-0.5B-Instruct"]


def results_bases(shared: Path = SHARED):
    """A small simulated grid and a subsample of the released results, both in the released schema."""
    import pandas as pd

    from transfergrid.analysis.simulate import simulate_results

    sim = simulate_results(tasks=["arc_challenge", "truthfulqa"], languages=["en", "es"],
                           models=RESULT_MODELS, seeds=3, seed=7)
    release = pd.read_csv(shared / "dnr_release" / "transfer_results.csv")
    cells = release["fine_tuned_dataset"].isin(["arc_challenge", "global_mmlu"]) & release["eval_dataset"].isin(
        ["arc_challenge", "global_mmlu"])
    langs = release["fine_tuned_language"].isin(["en", "es"]) & release["eval_language"].isin(["en", "es"])
    sub = release[cells & langs & release["model_name"].isin(RESULT_MODELS)].reset_index(drop=True)
    return {"simulated": sim, "release": sub}


JUNK = ["abc", "", " ", "nan", "inf", "-inf", "1e400", "7B", "\u2014", "None", "NULL", "1,5", "TRUE", "0x10", "-"]


def mutate_results(rng: random.Random, frame) -> tuple[bytes, str]:
    import numpy as np

    df = frame.copy()
    if rng.random() < 0.15:
        raw, what = mutate_text(rng, df.to_csv(index=False).encode("utf-8"))
        return raw, what
    op = rng.choice(["drop_col", "rename_col", "extra_col", "cell", "cell", "key_empty", "regime", "duplicate",
                     "subset", "subset", "nan_delta", "scale", "constant", "size", "seeds", "names", "semicolon"])
    col = rng.choice(list(df.columns))
    i = rng.randrange(len(df))
    if op == "drop_col":
        df = df.drop(columns=[col])
    elif op == "rename_col":
        df = df.rename(columns={col: typo(rng, col)})
    elif op == "extra_col":
        df["notes"] = "x"
    elif op == "cell":
        df[col] = df[col].astype(object)
        df.loc[i, col] = rng.choice(JUNK)
    elif op == "key_empty":
        col = rng.choice(["model_name", "fine_tuned_dataset", "fine_tuned_language", "eval_dataset", "eval_language"])
        df.loc[i, col] = rng.choice(["", " ", np.nan])
    elif op == "regime":
        df.loc[i, "regime"] = rng.choice(["MT-XX", "mt-ml", "MTML", "CT-CL", "MT-ML", "", "regime", "Mt-Cl"])
    elif op == "duplicate":
        df = pd_concat([df, df.iloc[[i]]])
    elif op == "subset":
        how = rng.choice(["rows", "one_row", "header", "model", "lang", "task", "regime"])
        keep = {"rows": df.sample(frac=rng.random(), random_state=rng.randrange(1000)).index,
                "one_row": df.index[[i]], "header": df.index[:0],
                "model": df.index[df["model_name"] == df["model_name"].iloc[i]],
                "lang": df.index[(df["fine_tuned_language"] == df["fine_tuned_language"].iloc[i])
                                 & (df["eval_language"] == df["fine_tuned_language"].iloc[i])],
                "task": df.index[df["eval_dataset"] == df["eval_dataset"].iloc[i]],
                "regime": df.index[df["regime"] == df["regime"].iloc[i]]}[how]
        df, op = df.loc[keep], f"subset {how} ({len(keep)} rows)"
    elif op == "nan_delta":
        cols = [c for c in df.columns if c.startswith("delta_")]
        rows = df.index if rng.random() < 0.5 else df.sample(frac=0.5, random_state=1).index
        df.loc[rows, cols] = np.nan
    elif op == "scale":
        num = [c for c in df.columns if df[c].dtype.kind == "f"]
        col = rng.choice(num)
        df[col] = df[col] * rng.choice([-1.0, 1e6, 1e-12, 100.0, 0.0])
    elif op == "constant":
        for c in [c for c in df.columns if c.startswith("delta_")]:
            df[c] = rng.choice([0.0, 1.0])
    elif op == "size":
        df["model_size"] = df["model_size"].astype(object)
        df.loc[df["model_name"] == df["model_name"].iloc[i], "model_size"] = rng.choice(
            ["8B", "abc", "-1", "0", "", "1.5b", "inf", "135M"])
    elif op == "seeds":
        df["n_seeds"] = df["n_seeds"].astype(object)
        df.loc[i, "n_seeds"] = rng.choice([0, -3, "three", 1.5, ""])
    elif op == "names":
        c = rng.choice(["fine_tuned_dataset", "eval_dataset", "fine_tuned_language", "eval_language", "model_name"])
        df[c] = df[c].astype(object)
        df.loc[df[c] == df[c].iloc[i], c] = rng.choice(["foo", "EN", " es", "arc challenge", "ä", "x:y", "1"])
    if op == "semicolon":
        return df.to_csv(index=False, sep=";").encode("utf-8"), "semicolon-separated"
    desc = {"drop_col": f"column {col} dropped", "rename_col": f"column {col} renamed", "cell": f"row {i} {col} junk",
            "scale": f"{col} scaled"}.get(op, op)
    return df.to_csv(index=False).encode("utf-8"), desc


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def results_cases(rng: random.Random, n: int, work: Path, shared: Path = SHARED) -> list[Case]:
    bases = results_bases(shared)
    cases = []
    for i in range(n):
        name = ("simulated", "release")[i % 2]
        raw, what = mutate_results(rng, bases[name])
        path = work / "results" / f"{i:04d}-{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        cases.append(Case("results", i, f"{name}: {what}", path))
    return cases


def run_results_case(case: Case) -> None:
    out = case.path.with_suffix(".analysis")
    case.commands = [["analyze", "--results", str(case.path), "--out", str(out)]]
    outcome = judge(invoke(case.commands[0]), [case.path.name], out)
    if outcome[0] == "exit 0" and not (out / "report.html").is_file():
        outcome = ("other", "exit 0 without report.html")
    case.outcome, case.detail = outcome


# --- the run --------------------------------------------------------------------------------------------
def subprocess_check(case: Case, env: dict) -> str | None:
    """Run the case's commands again as `python -m transfergrid`; None when the exit statuses agree."""
    for argv in case.commands:
        argv = [a + ".sub" if a.endswith((".out", ".analysis")) else a for a in argv]
        inproc = invoke(argv) if argv[0] != "run" else None
        with tempfile.TemporaryDirectory() as cwd:
            proc = subprocess.run([sys.executable, "-m", "transfergrid", *argv], capture_output=True, text=True,
                                  env=env, cwd=cwd, timeout=300, check=False)
        if "Traceback (most recent call last)" in proc.stderr:
            return f"{' '.join(argv[:2])}: subprocess traceback: {proc.stderr.strip().splitlines()[-1]}"
        expected = inproc.code if inproc is not None else 2
        if proc.returncode != expected:
            return f"{' '.join(argv[:2])}: subprocess exit {proc.returncode}, in-process {expected}"
        if proc.returncode == 2 and len(error_lines(proc.stderr)) != 1:
            return f"{' '.join(argv[:2])}: subprocess exit 2 with {len(error_lines(proc.stderr))} error lines"
    return None


def fuzz(n_studies: int, n_benchmarks: int, n_results: int, seed: int = 0, n_subprocess: int = 10,
         work: Path | None = None, progress: bool = True, shared: Path = SHARED) -> dict:
    """Write and run every case; returns {"counts": {category: Counter}, "cases": [...], ...}."""
    rng = random.Random(seed)
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="transfergrid-fuzz-")) if own else work
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFERGRID_CACHE": str(work / "cache"), "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *sys.path])}
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFERGRID_CACHE", "TRANSFERGRID_DATA")
    saved_env = {k: os.environ.get(k) for k in names}  # restored at the end (the tests share the process)
    os.environ.update({k: env[k] for k in names[:3]})
    os.environ.pop("TRANSFERGRID_DATA", None)  # --data-dir decides
    env.pop("TRANSFERGRID_DATA", None)
    timings = {}
    try:
        base_root = build_data_root(work / "base-data", shared)
        cases = (study_cases(rng, n_studies, work, base_root) + benchmark_cases(rng, n_benchmarks, work, base_root)
                 + results_cases(rng, n_results, work, shared))
        runners = {"study": lambda c: run_study_case(c, base_root),
                   "benchmark": lambda c: run_benchmark_case(c, work, base_root), "results": run_results_case}
        with fast_mode(), _progress(progress, len(cases)) as advance:
            for case in cases:
                start = time.perf_counter()
                runners[case.category](case)
                timings[case.category] = timings.get(case.category, 0.0) + time.perf_counter() - start
                advance()
        counts = {cat: Counter(c.outcome for c in cases if c.category == cat) for cat in runners}
        sub = {}
        for cat in runners:  # a spread of outcomes per category: passing exits first, then the rest
            mine = [c for c in cases if c.category == cat]
            picked = rng.sample(mine, min(n_subprocess, len(mine)))
            start = time.perf_counter()
            problems = [f"{c.path.name}: {p}" for c in picked if (p := subprocess_check(c, env))]
            sub[cat] = {"checked": len(picked), "disagree": problems, "seconds": time.perf_counter() - start}
        return {"counts": counts, "cases": cases, "subprocess": sub, "seconds": timings, "work": str(work)}
    finally:
        for k, v in saved_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        if own:
            shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _progress(enabled: bool, total: int):
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("fuzz cases", total=total)
        yield lambda: bar.advance(task)


def report(result: dict) -> str:
    lines = ["| inputs | cases | " + " | ".join(OUTCOMES) + " | seconds |", "|---" * (len(OUTCOMES) + 3) + "|"]
    for cat, counter in result["counts"].items():
        n = sum(counter.values())
        lines.append(f"| {cat} | {n} | " + " | ".join(str(counter.get(o, 0)) for o in OUTCOMES)
                     + f" | {result['seconds'].get(cat, 0):.0f} |")
    lines.append("")
    for cat, sub in result["subprocess"].items():
        lines.append(f"subprocess check, {cat}: {sub['checked']} cases again through `python -m transfergrid`, "
                     f"{len(sub['disagree'])} disagreed ({sub['seconds']:.0f} s)" +
                     "".join(f"\n  - {p}" for p in sub["disagree"]))
    bad = [c for c in result["cases"] if c.outcome not in ("exit 0", "exit 2")]
    if bad:
        lines += ["", f"{len(bad)} cases that did not end in exit 0 or a clean exit 2:"]
        lines += [f"  - [{c.outcome}] {c.path.name} ({c.what}): {c.detail}" for c in bad[:60]]
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--benchmarks", type=int, default=500)
    parser.add_argument("--results", type=int, default=500)
    parser.add_argument("--subprocess", type=int, default=10, help="cases per category run again as a subprocess")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the cases here and keep them (default: a temp dir)")
    parser.add_argument("--samples", type=int, default=0, help="print N exit-2 messages per category")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = fuzz(args.studies, args.benchmarks, args.results, args.seed, args.subprocess, args.keep)
    print(report(result))
    for cat in result["counts"]:
        for c in [c for c in result["cases"] if c.category == cat and c.outcome == "exit 2"][: args.samples]:
            print(f"  {cat} exit 2: {c.what} -> {c.detail}")
    print(f"\nall {sum(sum(c.values()) for c in result['counts'].values())} cases in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    cli()
