"""Analysis: pure functions over the tidy cell frame (the released-CSV schema of MISSION.md).

Study 1 (transfer grid): `frame` (read, validate, prepare), `regimes`, `rates`, `roles`, `matrices`,
`variance`, `consistency`, `distance`, `recommend`, and `tables.compute_tables`, which runs them all.
`simulate.simulate_results` builds a grid with known structure for tests, demos and benchmarks.
Study 2 (relatedness): `relatedness` (with `paired_table` and `relatedness_fits`).
"""
