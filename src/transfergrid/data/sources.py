"""Where a benchmark's rows come from when `data.sources` names a source for its task.

A source is a string: one default, then optional per-language overrides, space-separated:

    hf:alexandrainst/m_truthfulqa@f0445d4...  en=hf:Dr4kl3s/truthfulqa_en_aligned:default@7332da3...

Each part is either
- `hf:OWNER/NAME[:CONFIG][@REVISION]`, loaded with `datasets.load_dataset(NAME, CONFIG,
  revision=REVISION)`; CONFIG defaults to the language, `default` means the dataset's only
  configuration (no name is passed, as the reference does for truthfulqa_en_aligned); or
- a local directory holding a copy in the same column layout, as the hub repository's files or
  as `datasets` writes them: `{lang}/{split}.jsonl|json|parquet`, `data/{lang}/{split}.*`,
  `{lang}_{split}.*`, `{split}/{lang}.*`, `{lang}.*`, sharded `{lang}/{split}-00000-of-00001.parquet`,
  or a `save_to_disk` folder `{lang}/` (dataset_dict.json). A per-language override may also be
  a single-language copy: `{split}.*`, `data/{split}-*.parquet`, or a `save_to_disk` folder.

Every row gets `_line` (its 1-based line or row number, for error messages) and `_row`, its
0-based position counted over the dataset's splits in order, which is how the reference numbers
rows that have no id (TruthfulQA's `truth_id`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from transfergrid.data.base import Row, read_table
from transfergrid.errors import UserError

EXTS = (".jsonl", ".json", ".parquet")


def source_for(source: str, lang: str) -> tuple[str, bool]:
    """(the source part for `lang`, whether it is a per-language override)."""
    parts = source.split()
    if not parts:
        raise UserError("data.sources: empty source")
    default, overrides = parts[0], {}
    for part in parts[1:]:
        code, sep, value = part.partition("=")
        if not sep or not code or not value:
            raise UserError(f"data source {source!r}: {part!r} is not LANG=SOURCE")
        overrides[code] = value
    if "=" in default.split("/", 1)[0]:
        raise UserError(f"data source {source!r}: the first part is the default source, not LANG=SOURCE")
    return (overrides[lang], True) if lang in overrides else (default, False)


def parse_hf(spec: str) -> tuple[str, str | None, str | None]:
    """`OWNER/NAME[:CONFIG][@REVISION]` -> (name, config or None for the language, revision)."""
    name, _, revision = spec.partition("@")
    name, _, config = name.partition(":")
    if name.count("/") != 1 or not all(name.split("/")):
        raise UserError(f"data source 'hf:{spec}': expected hf:OWNER/NAME[:CONFIG][@REVISION]")
    return name, config or None, revision or None


def source_rows(source: str, lang: str, split_aliases: tuple[str, ...], root: Path) -> tuple[list[Row], str]:
    """Rows of one (language, split) from `source`. Returns (rows, where), `where` naming the file
    or dataset for error messages."""
    part, single = source_for(source, lang)
    if part.startswith("hf:"):
        name, config, revision = parse_hf(part[3:])
        config = lang if config is None else (None if config == "default" else config)
        return _hf_rows(name, config, revision, split_aliases), part
    base = Path(part).expanduser()
    if not base.is_absolute() and not base.exists():
        base = root / base
    if not base.is_dir():
        raise UserError(f"data source {part!r}: no such directory (looked in {base})")
    found = _local(base, lang, split_aliases, single)
    if found is None:
        raise UserError(f"data source {base}: no file for language {lang!r}, split {split_aliases[0]!r} "
                        f"(expected {lang}/{split_aliases[0]}.jsonl, .json or .parquet)")
    return found


def _local(base: Path, lang: str, aliases: tuple[str, ...], single: bool) -> tuple[list[Row], str] | None:
    for folder in ((base / lang, base) if single else (base / lang,)):
        if (folder / "dataset_dict.json").is_file():
            return _saved(folder, aliases)
    stems = [f"{d}{split}" for split in aliases for d in (f"{lang}/", f"data/{lang}/", f"{lang}_")]
    stems += [f"{split}/{lang}" for split in aliases]
    if single:
        stems += [f"{d}{split}" for split in aliases for d in ("", "data/")]
    for stem in stems:
        for ext in EXTS:
            if (base / f"{stem}{ext}").is_file():
                return _numbered(read_table(base / f"{stem}{ext}")), str(base / f"{stem}{ext}")
        shards = sorted(base.glob(f"{stem}-*.parquet"))
        if shards:
            return _numbered([r for shard in shards for r in read_table(shard)]), str(shards[0])
    for ext in EXTS:  # single-split datasets: one file per language
        if (base / f"{lang}{ext}").is_file():
            return _numbered(read_table(base / f"{lang}{ext}")), str(base / f"{lang}{ext}")
    return None


def _numbered(rows: list[Row], offset: int = 0) -> list[Row]:
    out = []
    for n, row in enumerate(rows):
        row = dict(row)
        row.setdefault("_line", n + 1)
        row["_row"] = offset + n
        out.append(row)
    return out


def _split_rows(dataset, aliases: tuple[str, ...], where: str) -> list[Row]:
    """The rows of the first split in `aliases`, numbered after the splits before it."""
    names = list(dataset)
    for split in aliases:
        if split in dataset:
            offset = sum(len(dataset[s]) for s in names[: names.index(split)])
            rows = _numbered([dict(r) for r in dataset[split]], offset)
            for n, row in enumerate(rows, 1):
                row["_line"] = n
            return rows
    raise UserError(f"{where} has no split {aliases[0]!r}; it has: {', '.join(names)}")


def _saved(folder: Path, aliases: tuple[str, ...]) -> tuple[list[Row], str]:
    try:
        import datasets
    except ImportError:
        raise UserError(f"{folder} is a `datasets` save_to_disk folder: it needs the `datasets` package") from None
    try:
        dataset = datasets.load_from_disk(str(folder))
    except Exception as exc:  # noqa: BLE001 - a damaged folder: one line for the user
        raise UserError(f"{folder}: cannot read the saved dataset: {exc}") from None
    return _split_rows(dataset, aliases, str(folder)), str(folder)


@lru_cache(maxsize=64)
def _hf_dataset(name: str, config: str | None, revision: str | None):
    try:
        import datasets
    except ImportError:
        raise UserError(f"hf:{name} needs the `datasets` package (pip install datasets)") from None
    try:
        return datasets.load_dataset(name, config, revision=revision)
    except Exception as exc:  # noqa: BLE001 - offline, unknown config, gated: one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"hf:{name} (config {config!r}, revision {revision or 'latest'}) could not be loaded: "
                        f"{first} (offline? point data.sources at a local copy instead)") from None


def _hf_rows(name: str, config: str | None, revision: str | None, aliases: tuple[str, ...]) -> list[Row]:
    dataset = _hf_dataset(name, config, revision)
    return _split_rows(dataset, aliases, f"hf:{name} (config {config!r})")
