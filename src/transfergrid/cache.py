"""The one on-disk cache of transfergrid: what is kept between runs to save time, never results.

Root: `$TRANSFERGRID_CACHE`, else `$XDG_CACHE_HOME/transfergrid`, else `~/.cache/transfergrid`.
Below it, one folder per kind:

- `models/`: GGUF models dequantised once into plain HF directories (bundled.gguf_cache_dir);
- `gguf/`: GGUF files assembled from a package's chunks (bundled gemma);
- `tokenizers/`: bundled models' tokenizers read from their GGUF;
- `data/`: derived data, e.g. TruthfulQA's aligned ids (keyed by the files they come from).

Every entry can be deleted at any time; it is recomputed when next needed.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "TRANSFERGRID_CACHE"
KINDS = ("models", "gguf", "tokenizers", "data")


def cache_root() -> Path:
    """$TRANSFERGRID_CACHE, else $XDG_CACHE_HOME/transfergrid, else ~/.cache/transfergrid (an empty
    variable counts as unset, as XDG says)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "transfergrid"


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cache entry (not created: writers create it when they write)."""
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; expected one of {', '.join(KINDS)}")
    return cache_root() / kind
