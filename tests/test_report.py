"""Study-1 figures and the self-contained HTML report, on stand-in tables with the analysis columns."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from report_fixtures import LANGS, TASKS, stand_in_tables

from transfergrid.report import breakdown_figures, heatmaps, role_figures
from transfergrid.report import figures as F
from transfergrid.report.html import build_report, read_tables, write_report
from transfergrid.report.html_parts import format_value


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def tables():
    return stand_in_tables()


@pytest.fixture(scope="module")
def written(tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    paths = F.write_figures(tables, out / "figures")
    return out, paths


def _image(fig):
    return next(a for a in fig.axes[0].get_images())


def test_heatmap_is_centred_on_zero_and_annotated_when_small(tables):
    matrix = tables["language_matrix"].set_index("source_lang")
    fig = heatmaps.language_heatmap(tables["language_matrix"])
    norm = _image(fig).norm
    assert isinstance(norm, TwoSlopeNorm) and norm.vcenter == 0
    assert norm.vmin == -norm.vmax  # symmetric: equal |Δ| reads as equal intensity
    assert norm.vmax == pytest.approx(np.nanmax(np.abs(matrix.to_numpy())))
    texts = [t.get_text() for t in fig.axes[0].texts]
    finite = matrix.to_numpy()[np.isfinite(matrix.to_numpy())]
    assert len(texts) == finite.size  # the NaN diagonal gets no number
    assert sorted(texts) == sorted(f"{v:.1f}" for v in finite)
    assert "Δ (pp)" in fig.axes[-1].get_ylabel()  # the colour bar carries the unit


def test_grid_heatmap_separates_task_blocks(tables):
    grid = tables["grid_matrix"]
    fig = heatmaps.grid_heatmap(grid)
    ax = fig.axes[0]
    horizontal = [line for line in ax.lines if line.get_ydata()[0] == line.get_ydata()[1]]
    positions = sorted({line.get_ydata()[0] for line in horizontal})
    assert positions == [k * len(LANGS) - 0.5 for k in range(1, len(TASKS))]
    assert [t.get_text() for t in ax.get_yticklabels()] == LANGS * len(TASKS)
    # the missing cell stays missing (masked), it is not drawn as Δ = 0
    assert np.ma.is_masked(_image(fig).get_array()[0, 1])


def test_large_matrix_is_not_annotated_and_clips_outliers():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, (44, 44))
    values[0, 0] = 80.0  # one extreme cell must not wash out the scale
    cells = [f"t{k // 11}:l{k % 11}" for k in range(44)]
    fig = heatmaps.grid_heatmap(pd.DataFrame(values, index=cells, columns=cells))
    assert len(fig.axes[0].texts) == 0
    norm = _image(fig).norm
    assert norm.vmax < 10 and norm.vmin == -norm.vmax


def test_roles_scatter_labels_every_point_and_draws_the_diagonal(tables):
    roles = tables["language_roles"]
    fig = role_figures.language_roles_scatter(roles)
    ax = fig.axes[0]
    assert {t.get_text() for t in ax.texts} >= set(LANGS)
    diag = [line for line in ax.lines if line.get_label() == "y = x"]
    assert diag and np.allclose(diag[0].get_xdata(), diag[0].get_ydata())


def test_roles_scatter_without_se_has_no_error_bars():
    roles = pd.DataFrame({"language": ["en", "es"], "donor": [1.0, 2.0], "donor_se": [np.nan, np.nan],
                          "recipient": [0.5, 0.1], "recipient_se": [np.nan, np.nan]})
    fig = role_figures.language_roles_scatter(roles)
    segments = [c for c in fig.axes[0].collections if c.__class__.__name__ == "LineCollection"]
    assert all(np.allclose(np.ptp(np.asarray(seg), axis=0), 0) for c in segments for seg in c.get_segments())


def test_family_roles_have_one_panel_per_family(tables):
    fig = role_figures.family_roles_scatter(tables["family_roles"])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in visible) == ["llama3.2", "qwen2.5"]
    for ax in visible:
        assert {t.get_text() for t in ax.texts} == set(LANGS)


def test_on_off_task_colours_by_family(tables):
    fig = role_figures.on_off_task_scatter(tables["on_off_task"])
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert {"qwen2.5", "llama3.2"} <= set(labels)


def test_regime_bars_follow_the_regime_order(tables):
    shuffled = tables["uplift_summary"].sample(frac=1, random_state=3)
    fig = breakdown_figures.regime_bars(shuffled)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_xticklabels()] == ["transfer", "MT-ML", "MT-CL", "CT-ML", "CT-CL"]
    heights = [p.get_height() for p in left.patches]
    assert heights == pytest.approx([0.894, 2.02, 1.246, 0.808, -0.2])
    assert len(right.patches) == 10  # a win bar and a harm bar per scope


def test_variance_shares_stack_to_the_shares(tables):
    fig = breakdown_figures.variance_shares(tables["variance_decomposition"])
    ax = fig.axes[0]
    tops = {round(p.get_x() + p.get_width() / 2, 3): p.get_y() + p.get_height() for p in ax.patches}
    assert len(tops) == 8 and all(v == pytest.approx(100.0) for v in tops.values())


def test_distance_scatter_titles_carry_the_correlation(tables):
    fig = breakdown_figures.distance_scatter(tables["ling_pairs"], tables["ling_correlation"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert any("syntax_knn" in t and "ρ = -0.20" in t and "perm. p = 0.2" in t for t in titles)


def test_write_figures_writes_png_and_svg_for_every_figure(written):
    out, paths = written
    assert sorted(p.name for p in paths) == sorted(f"{spec.name}.{ext}" for spec in F.FIGURES for ext in ("png", "svg"))
    for path in paths:
        assert path.parent == out / "figures" and path.stat().st_size > 2000
    import matplotlib.image as mpimg

    pixels = mpimg.imread(out / "figures" / "regime_bars.png")
    assert pixels.shape[1] == pytest.approx(10 * 150, rel=0.15)  # 10-inch figure at 150 dpi
    assert "<svg" in (out / "figures" / "regime_bars.svg").read_text()


def test_write_figures_skips_figures_whose_table_is_empty_or_missing(tables, tmp_path):
    partial = {"uplift_summary": tables["uplift_summary"], "consistency": tables["consistency"].iloc[0:0],
               "ling_correlation": tables["ling_correlation"],  # without ling_pairs: no distance figure
               "task_matrix": tables["task_matrix"].assign(**{t: np.nan for t in TASKS})}
    paths = F.write_figures(partial, tmp_path)
    assert sorted(p.name for p in paths) == ["regime_bars.png", "regime_bars.svg"]


def test_format_value_rounds_for_reading_and_shows_missing_as_absent():
    assert format_value(float("nan"), "donor_se") == "—"
    assert format_value(0.123456, "spearman_p") == "0.12"
    assert format_value(0.000123, "permutation_p") == "0.00012"
    assert format_value(1.23456, "mean") == "1.23"
    assert format_value(0.004, "mean") == "0.004"
    assert format_value(12.0, "n") == "12"
    assert format_value(17424, "n") == "17,424"


def test_report_is_self_contained_and_embeds_every_figure(tables, written):
    out, paths = written
    pngs = [p for p in paths if p.suffix == ".png"]
    path = write_report(out, tables, paths, title="Study <one>", study={"name": "demo", "models": 3})
    text = path.read_text(encoding="utf-8")
    assert path == out / "report.html" and not list(out.glob("*.tmp"))
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert links and all(u.startswith(("data:", "#")) for u in links)
    assert "http://" not in text and "https://" not in text and "<link" not in text
    images = re.findall(r'<img alt="([^"]*)"[^>]* src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == len(pngs)
    for _, payload in images:
        assert base64.b64decode(payload)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Study &lt;one&gt;" in text and "Study <one>" not in text
    assert "3 models" in text and f"{len(TASKS)} tasks" in text and f"{len(LANGS)} languages" in text
    assert "+0.89 pp" in text and "win 59.7%" in text and "harm 9.1%" in text
    for spec in F.FIGURES:
        assert spec.caption.split(".")[0].replace("'", "&#x27;") in text


def test_report_escapes_table_text_and_offers_csv_downloads(tables):
    evil = dict(tables)
    evil["harm_breakdown"] = tables["harm_breakdown"].assign(value=["<script>alert(1)</script>", "es", "hi", "zh"])
    text = build_report(evil, [], title="t")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    downloads = dict(re.findall(r'<a download="([^"]+)" href="data:text/csv;charset=utf-8;base64,([^"]+)"', text))
    assert set(downloads) == {f"{name}.csv" for name in tables}
    grid = pd.read_csv(io.StringIO(base64.b64decode(downloads["grid_matrix.csv"]).decode()), index_col=0)
    pd.testing.assert_frame_equal(grid, tables["grid_matrix"].set_index("source"))
    # the 44-wide grid is not dumped as an HTML table; long tables show their head only
    assert "too wide to show" not in text  # a 12 x 12 grid is shown as a table
    cells = [f"t{k // 10}:l{k % 10}" for k in range(20)]
    wide = dict(tables, grid_matrix=pd.DataFrame(np.zeros((20, 20)), index=cells, columns=cells))
    assert "too wide to show" in build_report(wide, [], title="t")
    assert f"First 25 of {len(tables['on_off_task'])} rows" in text


def test_report_shows_absent_standard_errors_as_absent(tables):
    single = dict(tables)
    single["language_roles"] = tables["language_roles"].assign(donor_se=np.nan, recipient_se=np.nan)
    text = build_report(single, [], title="one model")
    section = text.split("Language roles (MT-CL)")[1].split("</table>")[0]
    assert section.count(">—<") == 2 * len(LANGS)


def test_report_includes_extra_sections(tables, written, tmp_path):
    _, paths = written
    png = next(p for p in paths if p.name == "task_roles.png")
    extra = [("Relatedness (study 2)", [(png, "gain per language")],
              {"relatedness_gains": pd.DataFrame({"model": ["m"], "language": ["he"], "gain": [3.25]})})]
    text = build_report({"uplift_summary": tables["uplift_summary"]}, [], title="t", extra_sections=extra)
    assert "Relatedness (study 2)" in text and "gain per language" in text and "3.25" in text
    assert text.count("<img ") == 1
    assert 'download="relatedness_gains.csv"' in text


def test_report_counts_come_from_a_study(tables):
    from transfergrid.study import parse_study

    study = parse_study({"name": "mini", "seeds": [1], "models": [{"id": "a", "source": "bundled:x"}],
                         "grid": {"tasks": ["arc_challenge"], "languages": ["en", "es"]}})
    text = build_report(tables, [], title="t", study=study)
    assert "study mini" in text and "<span>1 model</span>" in text and "<span>1 task</span>" in text and "2 languages" in text
    assert study.content_hash() in text


def test_read_tables_round_trips_matrices(tables, tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    tables["language_matrix"].to_csv(folder / "language_matrix.csv", index=False)
    tables["uplift_summary"].to_csv(folder / "uplift_summary.csv", index=False)
    back = read_tables(folder)
    pd.testing.assert_frame_equal(back["language_matrix"], tables["language_matrix"].set_index("source_lang"))
    # the figures take either layout
    assert heatmaps.as_matrix(back["language_matrix"]).equals(heatmaps.as_matrix(tables["language_matrix"]))
    pd.testing.assert_frame_equal(back["uplift_summary"], tables["uplift_summary"])


def test_every_figure_is_a_figure(tables):
    for spec in F.FIGURES:
        fig = spec.build(*(tables[k] for k in spec.needs))
        assert isinstance(fig, Figure), spec.name
        assert all(ax.get_title() or ax.get_ylabel() or not ax.get_visible() for ax in fig.axes), spec.name


def test_scopes_are_ordered_by_analysis_regimes_alone():
    from transfergrid.analysis import regimes
    from transfergrid.report import style

    assert regimes.scope_order(["CT-CL", "other", "transfer", "MT-CL", "CT-CL"]) == ["transfer", "MT-CL", "CT-CL", "other"]
    assert regimes.SCOPES == ("transfer", "MT-ML", "MT-CL", "CT-ML", "CT-CL")
    assert not hasattr(style, "REGIME_ORDER")  # one home for the order
