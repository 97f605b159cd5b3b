"""Report: figures (PNG + SVG) and one self-contained HTML file from the analysis tables.

Submodules: `figures` (the study-1 figure registry, `write_figures`) over `heatmaps`, `role_figures`
and `breakdown_figures`; `html` (`write_report`, `read_tables`) over `headline` and `html_parts`;
`style` (palettes, matplotlib settings, CSS), `relatedness_figures` / `relatedness_html` (study 2).
Imported lazily so that `import transfergrid.report` does not pull in matplotlib.
"""
