"""Report: figures (PNG + SVG) and one self-contained HTML file from the analysis tables.

Submodules: `figures` (study-1 figures, `write_figures`), `html` (`write_report`, `read_tables`),
`style` (palettes, matplotlib settings, CSS), `relatedness_figures` (study 2).
Imported lazily so that `import transfergrid.report` does not pull in matplotlib.
"""
