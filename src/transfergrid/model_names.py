"""A model's family and size in billions, guessed from its name (study files, ingested and
simulated results), and the MISSION.md size buckets."""

from __future__ import annotations

import re

_FAMILIES = [
    (r"llama[-_ ]?3\.?2", "llama3.2"), (r"llama[-_ ]?3\.?1", "llama3.1"), (r"llama[-_ ]?3", "llama3"),
    (r"qwen[-_ ]?2\.?5", "qwen2.5"), (r"qwen[-_ ]?3", "qwen3"), (r"qwen", "qwen"),
    (r"gemma[-_ ]?3", "gemma3"), (r"gemma[-_ ]?2", "gemma2"), (r"gemma", "gemma"),
    (r"smollm[-_ ]?2", "smollm2"), (r"smollm", "smollm"), (r"mistral", "mistral"), (r"phi", "phi"),
    (r"olmo", "olmo"), (r"tiny", "tiny"),
]


def infer_family_size(text: str) -> tuple[str | None, float | None]:
    """Guess (family, size in billions) from a model name such as 'Qwen2.5-0.5B-Instruct'."""
    low = text.lower()
    family = next((name for pat, name in _FAMILIES if re.search(pat, low)), None)
    size = None
    m = re.search(r"(?<![\w.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", low.replace("_", "-"))
    if m is None:
        m = re.search(r"-(\d+(?:\.\d+)?)([bm])\b", low)
    if m:
        value = float(m.group(1))
        size = value if m.group(2) == "b" else value / 1000.0
    return family, size


def size_bucket(size_b: float | None) -> str | None:
    """MISSION.md buckets: S <= 1.5B < M < 7B <= L."""
    if size_b is None:
        return None
    if size_b <= 1.5:
        return "S"
    return "M" if size_b < 7 else "L"
