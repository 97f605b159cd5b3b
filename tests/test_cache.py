"""cache.py: one cache root for every kind of entry ($TRANSFERGRID_CACHE, XDG, ~/.cache)."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfergrid import cache


@pytest.fixture()
def env(monkeypatch, tmp_path):
    for name in ("TRANSFERGRID_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_root_is_transfergrid_cache_else_xdg_else_home(env, tmp_path):
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "transfergrid"
    env.setenv("XDG_CACHE_HOME", "")  # empty = unset (XDG)
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "transfergrid"
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "transfergrid"
    env.setenv("TRANSFERGRID_CACHE", str(tmp_path / "tg"))
    assert cache.cache_root() == tmp_path / "tg"  # the folder itself, nothing appended
    assert [cache.cache_dir(k) for k in cache.KINDS] == [tmp_path / "tg" / k for k in ("models", "gguf", "tokenizers", "data")]
    with pytest.raises(ValueError, match="unknown cache kind 'weights'"):
        cache.cache_dir("weights")


def test_models_and_data_keep_their_entries_under_the_one_root(env, tmp_path):
    from transfergrid import bundled
    from transfergrid.data import truthfulqa

    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert bundled.gguf_cache_dir("ab" * 32) == tmp_path / "xdg" / "transfergrid" / "models" / ("ab" * 8)
    root = tmp_path / "data"
    (root / truthfulqa.FOLDER).mkdir(parents=True)
    truthfulqa._ids.cache_clear()
    truthfulqa._ids(root, ())
    written = sorted(p.relative_to(tmp_path) for p in (tmp_path / "xdg").rglob("*") if p.is_file())
    assert len(written) == 1 and written[0].parent == Path("xdg/transfergrid/data")
    assert written[0].name.startswith("truthfulqa-ids-")
    truthfulqa._ids.cache_clear()
