"""Benchmark data: raw upstream files -> Items, per (task, language, split); parallel manifests."""

from transfergrid.data.base import Benchmark
from transfergrid.data.registry import (
           benchmark_names,
           get_benchmark,
           load_items,
           resolve_data_dir,
)
from transfergrid.data.splits import SPLITS, StudyData, manifest_hash

__all__ = [
           "SPLITS",
           "Benchmark",
           "StudyData",
           "benchmark_names",
           "get_benchmark",
           "load_items",
           "manifest_hash",
           "resolve_data_dir",
]
