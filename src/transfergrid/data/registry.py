"""Registry of benchmarks (placeholder until the data layer lands)."""

BENCHMARK_NAMES = ["arc_challenge", "mmlu", "truthfulqa_mc1", "hellaswag", "global_mmlu_lite",
                   "xstorycloze", "xcopa", "belebele", "mgsm"]


def benchmark_names() -> list[str]:
    return list(BENCHMARK_NAMES)
