"""Benchmark data: raw upstream files -> Items, per (task, language, split); parallel manifests."""
