"""Transfer regimes of a (source cell, target cell) pair, as in "Donors and Recipients".

MT-ML is the source cell itself (reported apart, not transfer). MT-CL: matched task, cross language.
CT-ML: cross task, matched language (the arXiv text calls it ML-CT). CT-CL: cross task and language.

A source set (composition.py: tasks / languages joined with "+") matches a target's task if the
task is among the set's tasks, and its language likewise. So MT-ML, "the source cell itself", reads
for a set as "the target's task and language are both among the set's": for a set of one task (or
of one language) exactly the targets that are one of its cells; for a mixed set such as
{arc:en, tqa:es} also arc:es, which is no member (`analysis.composition` marks members apart).
"""

from __future__ import annotations

MT_ML, MT_CL, CT_ML, CT_CL = "MT-ML", "MT-CL", "CT-ML", "CT-CL"
REGIMES = (MT_ML, MT_CL, CT_ML, CT_CL)
TRANSFER = (MT_CL, CT_ML, CT_CL)
OFF_TASK = (CT_ML, CT_CL)
ALL_TRANSFER = "transfer"  # the scope of every transfer cell (MT-CL, CT-ML and CT-CL together)
SCOPES = (ALL_TRANSFER, *REGIMES)  # the order of scopes in tables, figures and the report

# Label spellings seen in the wild, by their two halves in any order ("ML-CT" = "CT-ML").
_BY_HALVES = {
    frozenset({"MT", "ML"}): MT_ML,
    frozenset({"MT", "CL"}): MT_CL,
    frozenset({"CT", "ML"}): CT_ML,
    frozenset({"CT", "CL"}): CT_CL,
}


def regime(source_task: str, source_lang: str, target_task: str, target_lang: str) -> str:
    same_task = target_task in str(source_task).split("+")
    same_lang = target_lang in str(source_lang).split("+")
    if same_task:
        return MT_ML if same_lang else MT_CL
    return CT_ML if same_lang else CT_CL


def normalize_regime(label: str) -> str | None:
    """The canonical label for a known spelling ("ml-ct", "CT_ML", ...), else None."""
    halves = str(label).strip().upper().replace("_", "-").replace(" ", "-").replace("–", "-").split("-")
    return _BY_HALVES.get(frozenset(halves)) if len(halves) == 2 else None


def scope_order(values) -> list[str]:
    """Distinct scope labels in `SCOPES` order, any others after them in their first-seen order."""
    present = list(dict.fromkeys(str(v) for v in values))
    return [s for s in SCOPES if s in present] + [s for s in present if s not in SCOPES]
