"""The data of the "Donors and Recipients" reference run (kdymkiewicz/Donors-and-Recipients,
split_benchmarks.py and DATASETS.md): its Hugging Face datasets at the revisions it pins, as
`data.sources` strings (see sources.py), and its names for our benchmarks."""

from __future__ import annotations

LANGUAGES = ("ar", "bn", "de", "en", "es", "fr", "hi", "id", "it", "pt", "zh")

# our benchmark -> the reference's dataset name (its manifest file is `<name>.csv`)
NAMES = {"arc_challenge": "arc_challenge", "global_mmlu_lite": "global_mmlu",
         "hellaswag": "hellaswag", "truthfulqa_mc1": "truthfulqa"}

# our benchmark -> data.sources value: the reference's source datasets and revisions, with its
# per-language exceptions (HellaSwag zh from richmondsin, TruthfulQA en from Dr4kl3s; the latter
# has a single configuration, loaded without a name as the reference does)
SOURCES = {
    "arc_challenge": "hf:alexandrainst/m_arc@69b0991ee606079105c4f9e271bcc1fef0014e03",
    "global_mmlu_lite": "hf:CohereLabs/Global-MMLU-Lite@36c2fd756f19ccf13a9a96c8e53ccecc02192b8b",
    "hellaswag": ("hf:alexandrainst/m_hellaswag@9d31dc982bd6285e081e3e3136332a38b9c1d7b7 "
                  "zh=hf:richmondsin/m_hellaswag@8d9642f16ae3031f7eddc3e3531b6ae58686d81a"),
    "truthfulqa_mc1": ("hf:alexandrainst/m_truthfulqa@f0445d470f1925882b990f5f247fdcf288972f60 "
                       "en=hf:Dr4kl3s/truthfulqa_en_aligned:default@7332da38d96e69b5d6f2502cd45db3fe011b2f19"),
}
