"""Does cross-lingual transfer follow linguistic distance? (MISSION.md "Linguistic distance")

For each ordered language pair (source l1 != target l2) the mean MT-CL Δ over models and tasks,
against typological distances between l1 and l2:

* the reference's: cosine distance between lang2vec `syntax_knn`, `phonology_knn` and
  `inventory_knn` vectors (URIEL, kNN-imputed; the data ships inside the lang2vec package);
* URIEL+ (`urielplus` package, its bundled databases, its default angular distance):
  genetic, geographic, syntactic, phonological, inventory, featural, as `urielplus_<name>`.

Language codes: the reference maps zh to `cmn` (Mandarin), not to the ISO 639-3 macrolanguage `zho`
that lang2vec's letter codes give; its mapping is the default (`codes="reference"`), and rows with
the ISO mapping are reported beside it where a grid's languages map differently (column `codes`).

Spearman and Pearson correlations are reported with their textbook p-values, but the pairs share
languages and are not independent, so `permutation_p` is a Mantel / QAP test: the language labels
of the distance matrix are permuted (one permutation applied to rows and columns), the Spearman
correlation recomputed, and p = (1 + #{|ρ_perm| >= |ρ|}) / (1 + permutations), two-sided.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.regimes import MT_CL

log = logging.getLogger(__name__)

LANG2VEC_FEATURES = ("syntax_knn", "phonology_knn", "inventory_knn")
URIELPLUS_DISTANCES = ("genetic", "geographic", "syntactic", "phonological", "inventory", "featural")
LING_COLUMNS = ["distance", "n", "spearman_rho", "spearman_p", "pearson_r", "pearson_p", "permutation_p", "codes"]
REFERENCE_CODES = {"zh": "cmn"}  # the reference's ISO_MAP, where it differs from lang2vec's letter codes
CODES = ("reference", "iso639-3")
PERMUTATIONS = 9999


# lang2vec's kNN-imputed URIEL sets: (file in the package's data folder, source, feature prefix),
# as in its FEATURE_SETS_DICT. Read directly: importing lang2vec.lang2vec takes seconds (it loads
# every database at import) and needs setuptools' pkg_resources just to find these files.
_LANG2VEC_SETS = {"syntax_knn": ("feature_predictions.npz", "predicted", "S_"),
                  "phonology_knn": ("feature_predictions.npz", "predicted", "P_"),
                  "inventory_knn": ("feature_predictions.npz", "predicted", "INV_")}


def lang2vec_data_dir() -> Path:
    """The lang2vec package's data folder, found through its installed distribution: the package
    also installs a `lang2vec.py` script into the venv's bin/, which shadows the package on
    sys.path when a console script runs, so `find_spec("lang2vec")` cannot be trusted."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("lang2vec")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError("the lang2vec package is not installed") from None
    return Path(dist.locate_file("lang2vec")) / "data"


_lang2vec_data = lang2vec_data_dir


@functools.lru_cache(maxsize=1)
def _letter_codes() -> dict[str, str]:
    return json.loads((_lang2vec_data() / "letter_codes.json").read_text(encoding="utf-8"))


def iso639_3(lang: str, codes: str = "iso639-3") -> str:
    """ISO 639-3 code of a language code as a grid uses it ("ar" -> "ara", "zh-s" -> "zho"; with
    codes="reference", zh -> "cmn" as the reference maps it)."""
    code = str(lang).lower().split("-")[0].split("_")[0]
    if codes == "reference" and code in REFERENCE_CODES:
        return REFERENCE_CODES[code]
    return code if len(code) == 3 else _letter_codes().get(code, code)


@functools.lru_cache(maxsize=32)
def lang2vec_vectors(languages: tuple[str, ...], feature_set: str, codes: str = "reference") -> dict[str, np.ndarray]:
    """lang2vec feature vectors per language, as `lang2vec.get_features` returns them (missing
    values as NaN); languages it does not know are left out (logged)."""
    filename, source, prefix = _LANG2VEC_SETS[feature_set]
    with np.load(_lang2vec_data() / filename) as db:
        langs, feats, sources, data = db["langs"], db["feats"], db["sources"], db["data"]
    columns = np.array([str(f).startswith(prefix) for f in feats])
    src = int(np.flatnonzero(sources == source)[0])
    row = {str(code): i for i, code in enumerate(langs)}
    out = {}
    for lang in languages:
        i = row.get(iso639_3(lang, codes))
        if i is None:
            log.info("lang2vec has no %s vector for %r", feature_set, lang)
            continue
        values = data[i, columns, src].astype(float)
        out[lang] = np.where(values == -1, np.nan, values)
    return out


def cosine_distances(vectors: dict[str, np.ndarray], languages: list[str]) -> pd.DataFrame:
    """1 - cosine similarity, on the features both languages have."""
    dist = pd.DataFrame(np.nan, index=languages, columns=languages)
    for a in languages:
        for b in languages:
            if a in vectors and b in vectors:
                u, v = vectors[a], vectors[b]
                ok = np.isfinite(u) & np.isfinite(v)
                nu, nv = np.linalg.norm(u[ok]), np.linalg.norm(v[ok])
                if ok.any() and nu > 0 and nv > 0:
                    dist.loc[a, b] = max(0.0, 1.0 - float(u[ok] @ v[ok]) / (nu * nv))
    return dist


@functools.lru_cache(maxsize=4)
def urielplus_distances(languages: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """URIEL+ distance matrices by name; {} (logged) if the package is missing or fails."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from urielplus import (
            urielplus,  # configures the root logger at import: restored below
        )

        uriel = urielplus.URIELPlus()
    except Exception as exc:  # noqa: BLE001 -- optional dependency; any failure only drops its rows
        log.info("URIEL+ distances skipped: %s", exc)
        return {}
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    codes = {lang: iso639_3(lang) for lang in languages}
    known = [lang for lang in languages if codes[lang] in set(uriel.langs[0])]
    if len(known) < 3:
        log.info("URIEL+ distances skipped: it knows %d of the grid's languages", len(known))
        return {}
    out = {}
    previous = root.level
    root.setLevel(max(previous, logging.WARNING))  # URIEL+ logs each call at INFO on the root logger
    try:
        for name in URIELPLUS_DISTANCES:
            try:
                matrix = urielplus_matrix(uriel, name, [codes[lang] for lang in known])
            except Exception as exc:  # noqa: BLE001 -- URIEL+ raises bare errors per distance
                log.info("URIEL+ %s distance skipped: %s", name, exc)
                continue
            matrix[matrix < 0] = np.nan  # URIEL+ marks pairs without shared features with -1
            out[f"urielplus_{name}"] = pd.DataFrame(matrix, index=known, columns=known)
    finally:
        root.setLevel(previous)
    return out


_URIEL_PREFIX = {"syntactic": "S_", "phonological": "P_", "inventory": "INV_", "morphological": "M_"}


def urielplus_matrix(uriel, name: str, codes: list[str]) -> np.ndarray:
    """`uriel.new_distance(name, codes)`, vectorised: the same numbers (-1 where a pair shares no
    feature), in milliseconds instead of its per-feature Python loops (~1.4 s per distance).

    As URIEL+ does: a language has a feature when not all its sources are -1; each feature's value
    is its one source, else the mean (geographic, or aggregation "A") or the max ("U") of its known
    sources; a pair is compared on the features both have, by angular distance (or cosine, as the
    object is configured), rounded to 4 decimals."""
    idx = uriel.map_new_distance_to_loaded_features(name)  # also applies URIEL+'s eWAVE restriction
    feats = np.asarray(uriel.feats[idx]).astype(str)
    langs = np.asarray(uriel.langs[idx]).astype(str)
    raw = np.asarray(uriel.data[idx][[int(np.flatnonzero(langs == c)[0]) for c in codes]])
    raw = raw[..., None] if raw.ndim == 2 else raw
    x = raw.astype(float)
    prefix = _URIEL_PREFIX.get(name)
    use = np.ones(len(feats), dtype=bool) if prefix is None else np.char.startswith(feats, prefix)
    has = use[None, :] & ~np.all(x == -1.0, axis=2)
    known = (x != -1.0) & np.isfinite(x)
    count = known.sum(axis=2)
    if x.shape[2] == 1:  # URIEL+ then uses the stored values as they are (float32: same rounding)
        value = raw[..., 0]
    elif name == "geographic" or uriel.aggregation == "A":
        value = np.where(count > 0, np.where(known, x, 0.0).sum(axis=2) / np.maximum(count, 1), -1.0)
    else:
        value = np.where(count > 0, np.where(known, x, -np.inf).max(axis=2), -1.0)
    n = len(codes)
    out = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            shared = has[a] & has[b]
            if not shared.any():
                out[a, b] = 0.0 if a == b else -1.0
                continue
            u, v = value[a, shared], value[b, shared]
            u = u if np.linalg.norm(u) != 0 else np.full(u.size, 1e-10)
            v = v if np.linalg.norm(v) != 0 else np.full(v.size, 1e-10)
            cos = np.clip(np.dot(u / np.linalg.norm(u), v / np.linalg.norm(v)), -1.0, 1.0)
            dist = 1 - cos if uriel.distance_metric == "cosine" else 2 * np.arccos(cos) / np.pi
            out[a, b] = round(dist, 4)  # in the values' own precision, as URIEL+
    return out


def language_pair_delta(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean MT-CL Δ per ordered language pair (source rows × target columns). Source sets of several
    languages ("en+es", composition.py) have no distance to a language: left out."""
    df = ensure_prepared(frame)
    cells = df.loc[(df["regime"] == MT_CL) & ~df["source_lang"].astype(str).str.contains("+", regex=False)]
    return cells.groupby(["source_lang", "target_lang"])["delta"].mean().unstack("target_lang")


def mantel(delta: pd.DataFrame, dist: pd.DataFrame, permutations: int = PERMUTATIONS, seed: int = 0) -> dict:
    """Correlations of Δ with distance over the ordered pairs both define, and the QAP p-value."""
    langs = [lang for lang in delta.index if lang in dist.index and lang in delta.columns]
    D = delta.reindex(index=langs, columns=langs).to_numpy(dtype=float)
    G = dist.reindex(index=langs, columns=langs).to_numpy(dtype=float)
    off = ~np.eye(len(langs), dtype=bool)
    use = off & np.isfinite(D) & np.isfinite(G)
    n = int(use.sum())
    empty = {"n": n, "spearman_rho": np.nan, "spearman_p": np.nan, "pearson_r": np.nan,
             "pearson_p": np.nan, "permutation_p": np.nan}
    if n < 4 or np.ptp(G[use]) == 0 or np.ptp(D[use]) == 0:
        return empty
    x, y = D[use], G[use]
    rho = scipy.stats.spearmanr(x, y)
    r = scipy.stats.pearsonr(x, y)
    # Permute the distance matrix's labels; pairs whose permuted distance is missing drop out.
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((permutations, len(langs))), axis=1)
    rows, cols = np.nonzero(use)
    if use.sum() == off.sum():
        # Every off-diagonal pair is used, so a permutation only reorders the same distances: their
        # ranks are the permuted ranks, and ρ_perm is one dot product per permutation.
        ranked = np.full(G.shape, np.nan)
        ranked[rows, cols] = scipy.stats.rankdata(y)
        cx = scipy.stats.rankdata(x) - (n + 1) / 2.0
        cy = ranked[rows, cols] - (n + 1) / 2.0
        null = ((ranked[perms[:, rows], perms[:, cols]] - (n + 1) / 2.0) @ cx) / np.sqrt((cx @ cx) * (cy @ cy))
    else:
        null = _spearman_rows(x, G[perms[:, rows], perms[:, cols]])  # permutations × pairs
    extreme = np.sum(np.abs(null[np.isfinite(null)]) >= abs(rho.statistic) - 1e-12)
    p_perm = (1 + extreme) / (1 + np.isfinite(null).sum())
    return {"n": n, "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue),
            "pearson_r": float(r.statistic), "pearson_p": float(r.pvalue), "permutation_p": float(p_perm)}


def _spearman_rows(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Spearman ρ of x with each row of ys, over the entries where that row is finite."""
    ok = np.isfinite(ys)
    rx = scipy.stats.rankdata(np.where(ok, x[None, :], np.nan), axis=1, nan_policy="omit")
    ry = scipy.stats.rankdata(ys, axis=1, nan_policy="omit")
    cx = rx - np.nanmean(rx, axis=1, keepdims=True)
    cy = ry - np.nanmean(ry, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.nansum(cx * cy, axis=1) / np.sqrt(np.nansum(cx * cx, axis=1) * np.nansum(cy * cy, axis=1))
    rho[ok.sum(axis=1) < 4] = np.nan
    return rho


def distance_matrices(languages: list[str], urielplus: bool = True,
                      codes: str = "reference") -> dict[str, pd.DataFrame]:
    out = {}
    for feature_set in LANG2VEC_FEATURES:
        try:
            vectors = lang2vec_vectors(tuple(languages), feature_set, codes)
        except ImportError as exc:
            log.info("lang2vec distances skipped: %s", exc)
            break
        out[feature_set] = cosine_distances(vectors, languages)
    if urielplus:
        out.update(urielplus_distances(tuple(languages)))
    return out


def ling_correlation(frame: pd.DataFrame, *, permutations: int = PERMUTATIONS, seed: int = 0,
                     urielplus: bool = True) -> pd.DataFrame:
    delta = language_pair_delta(frame)
    languages = sorted(set(delta.index) | set(delta.columns))
    if len(languages) < 3:
        log.info("ling_correlation: %d language(s) with MT-CL cells (need 3): skipped", len(languages))
        return pd.DataFrame(columns=LING_COLUMNS)
    # URIEL+ is queried with ISO 639-3 codes (zh -> zho); its rows say so.
    rows = [{"distance": name, **mantel(delta, dist, permutations, seed),
             "codes": "iso639-3" if name.startswith("urielplus") else "reference"}
            for name, dist in distance_matrices(languages, urielplus).items()]
    if any(iso639_3(lang, "reference") != iso639_3(lang) for lang in languages):
        rows += [{"distance": f"{name} (iso639-3)", **mantel(delta, dist, permutations, seed), "codes": "iso639-3"}
                 for name, dist in distance_matrices(languages, False, "iso639-3").items()]
    return pd.DataFrame(rows, columns=LING_COLUMNS)
