"""The study file: a declarative TOML spec of the grid, validated once at the boundary.

Defaults are the reference recipe of "Donors and Recipients" (MISSION.md). After `load_study`
the rest of the code receives a validated, frozen `Study` and never re-validates.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from transfergrid.errors import StudyError, did_you_mean, validation_line
from transfergrid.model_names import infer_family_size
from transfergrid.prompts import Format
from transfergrid.records import Cell
from transfergrid.training_config import Spec, TrainingSpec, key_hint, spelled_loc

REFERENCE_SEEDS = [17, 42, 101]


def _check_language_codes(codes: list[str]) -> None:
    """Language codes become file names (es, zh-s, arb_Arab): no paths, spaces or 5,000 characters."""
    bad = [c for c in codes if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", c)]
    if bad:
        raise ValueError(f"{bad[0][:40]!r} is not a language code (letters, digits, '_' and '-', at most 64)")


class ModelSpec(Spec):
    """One model of the study. `id` is the name results carry (`model_name`)."""

    id: str
    source: str
    family: str | None = None
    size_b: float | None = Field(default=None, gt=0, description="parameters, in billions")
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    @model_validator(mode="after")
    def _infer(self) -> ModelSpec:
        family, size = infer_family_size(f"{self.id} {self.source}")
        if self.family is None and family:
            object.__setattr__(self, "family", family)
        if self.size_b is None and size:
            object.__setattr__(self, "size_b", size)
        return self


class GridSpec(Spec):
    tasks: list[str] = Field(min_length=1)
    languages: list[str] = Field(min_length=1)
    sources: list[str | list[str]] | str | None = Field(
        default=None, description="TASK:LANG source cells (default: every cell); a list of cells is one source "
                                  "trained on them pooled; generators 'cells', 'pairs:TASK' (composition.py)")
    targets: list[str] | None = Field(default=None, description="TASK:LANG target cells (default: every cell)")
    extra_targets: list[str] = Field(
        default_factory=list, description="TASK:LANG target-only cells of tasks outside `tasks` (e.g. "
                                          "mgsm:en, generative): evaluated beside the targets, never trained on")

    @field_validator("tasks", "languages")
    @classmethod
    def _unique(cls, v: list[str], info: ValidationInfo) -> list[str]:
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)}")
        if info.field_name == "languages":
            _check_language_codes(v)
        return v

    @field_validator("sources", mode="before")
    @classmethod
    def _source_shapes(cls, v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        if not isinstance(v, list) or not all(isinstance(x, str) or (isinstance(x, list) and x and all(
                isinstance(y, str) for y in x)) for x in v):
            raise ValueError("expected a list of TASK:LANG cells and of sets (non-empty lists of cells), "
                             f"or a generator string ('cells', 'pairs:TASK'); got {v!r}")
        return v

    @model_validator(mode="after")
    def _cells_in_grid(self) -> GridSpec:
        if self.sources is not None:
            from transfergrid.composition import expand_sources

            try:
                expand_sources(self.sources, self.tasks, self.languages)
            except ValueError as exc:
                raise ValueError(f"sources: {exc}") from None
        for text in self.targets or []:
            task, sep, lang = text.partition(":")
            if not sep or task not in self.tasks or lang not in self.languages:
                raise ValueError(f"targets: {text!r} is not a TASK:LANG cell of the grid "
                                 f"(tasks {self.tasks}, languages {self.languages})")
        for text in self.extra_targets:
            task, sep, lang = text.partition(":")
            if not sep or not task or not lang:
                raise ValueError(f"extra_targets: {text!r} is not a TASK:LANG cell")
            if task in self.tasks:
                raise ValueError(f"extra_targets: {text!r} is a task of the grid; list it in targets "
                                 f"(extra targets are cells of tasks outside tasks, never sources)")
            if self.extra_targets.count(text) > 1:
                raise ValueError(f"extra_targets: {text!r} listed twice")
        return self


class DataSpec(Spec):
    dir: str | None = Field(default=None, description="data root; else $TRANSFERGRID_DATA, else ../shared/data")
    sources: dict[str, str] = Field(default_factory=dict,
                                    description="per task: 'hf:owner/name' or a local path in that dataset's format")


class SplitOverride(Spec):
    train: int | None = Field(default=None, ge=1)
    test: int | None = Field(default=None, ge=1)


class SplitSpec(Spec):
    train: int = Field(default=300, ge=1)
    test: int = Field(default=400, ge=1)
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    validation_seed: int = 42
    seed: int = Field(default=0, description="seed of the item selection for the manifests")
    per_task: dict[str, SplitOverride] = Field(
        default_factory=lambda: {"global_mmlu_lite": SplitOverride(train=215)})
    manifests: str | None = Field(
        default=None, description="directory of <task>.csv split manifests (split,id; relative to the study "
                                  "file): fixed train / test ids instead of drawing them (train, test, seed, "
                                  "per_task unused)")

    def sizes(self, task: str) -> tuple[int, int]:
        o = self.per_task.get(task)
        return ((o.train if o and o.train else self.train), (o.test if o and o.test else self.test))


class EvaluationSpec(Spec):
    format: Format = "cloze"
    chat_template: bool = False
    metric: Literal["auto", "acc", "acc_norm"] = Field(
        default="auto", description="headline metric; auto = acc_norm where the task has it, else acc")
    batch_tokens: int | None = Field(
        default=None, ge=64, description="tokens per forward pass; unset = sized by the device "
                                         "(free GPU memory on CUDA, 512 on CPU)")
    limit: int | None = Field(default=None, ge=1, description="score only the first N test items of a cell")
    max_new_tokens: int = Field(default=256, ge=1, description="generative targets (mgsm): greedy tokens at most "
                                                              "(the harness's max_gen_toks)")
    # few-shot evaluation (transfergrid.fewshot): k solved train examples before every test item
    fewshot: int = Field(default=0, ge=0, description="k examples per target cell from its train split; 0 = zero-shot")
    fewshot_seed: int = Field(default=1234, description="seed of the draw (the harness's fewshot_random_seed)")
    fewshot_sampling: Literal["cell", "item"] = Field(
        default="cell", description="one draw per target cell, or one per test item (the harness's stream)")
    fewshot_as_multiturn: bool | None = Field(
        default=None, description="examples as chat turns; default: on with chat_template (the harness)")
    # chain-of-thought variant (transfergrid.cot, study 2's procedure): base and every adapter also
    # reason greedily, then their numbered answer is scored after the reasoning
    cot: bool = Field(default=False, description="also evaluate base and adapters with chain-of-thought")
    cot_max_new_tokens: int = Field(default=256, ge=1, description="reasoning tokens at most (as relatedness.cot)")
    cot_batch_size: int = Field(default=8, ge=1, description="prompts per generation batch (as relatedness.cot)")

    @model_validator(mode="after")
    def _fewshot(self) -> EvaluationSpec:
        if self.fewshot_as_multiturn and not self.chat_template:
            raise ValueError("fewshot_as_multiturn = true needs chat_template = true")
        return self


class CotSpec(Spec):
    enabled: bool = True
    max_new_tokens: int = Field(default=256, ge=1)
    batch_size: int = Field(default=8, ge=1)


class RelatednessSpec(Spec):
    benchmark: str = "belebele"
    source_languages: list[str] = Field(min_length=1)
    groups: dict[str, list[str]] | Literal["auto"] = Field(
        description="named target groups, e.g. {related = [...], control = [...]}, or 'auto' (by family)")
    auto_targets: list[str] = Field(default_factory=list, description="targets to group when groups = 'auto'")
    related_group: str = "related"
    scripts: dict[str, str] = Field(default_factory=dict, description="optional script label per language")
    test_items: int = Field(default=100, ge=1)
    train_items_per_language: int | None = Field(default=None, ge=1)
    weak_baseline: float = Field(default=0.5, gt=0, lt=1, description="baseline accuracy splitting weak / strong")
    cot: CotSpec = Field(default_factory=CotSpec)

    @model_validator(mode="after")
    def _groups(self) -> RelatednessSpec:
        _check_language_codes([*self.source_languages, *self.target_languages()])
        if isinstance(self.groups, dict):
            if self.related_group not in self.groups:
                raise ValueError(f"groups needs a group named {self.related_group!r} (related_group)")
        elif not self.auto_targets:
            raise ValueError("groups = 'auto' needs auto_targets, the languages to group")
        return self

    def target_languages(self) -> list[str]:
        if isinstance(self.groups, dict):
            return [lang for langs in self.groups.values() for lang in langs]
        return list(self.auto_targets)


class Study(Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    profile: str | None = Field(default=None, description="a named set of defaults (profiles.py), e.g. "
                                                         "'donors-recipients'; explicit fields override it")
    kind: Literal["transfer", "relatedness"] = "transfer"
    description: str = ""
    output_dir: str | None = Field(default=None, description="default: runs/<name>")
    seeds: list[int] = Field(default_factory=lambda: list(REFERENCE_SEEDS), min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    grid: GridSpec | None = None
    data: DataSpec = Field(default_factory=DataSpec)
    splits: SplitSpec = Field(default_factory=SplitSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    relatedness: RelatednessSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        ids = [m.id for m in self.models]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"models: id listed twice: {', '.join(dup)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds: a seed is listed twice")
        if self.kind == "transfer" and self.grid is None:
            raise ValueError("a transfer study needs a [grid] table with tasks and languages")
        if self.kind == "relatedness" and self.relatedness is None:
            raise ValueError("a relatedness study needs a [relatedness] table")
        if self.kind == "relatedness" and self.evaluation.fewshot:
            raise ValueError("evaluation.fewshot is an option of transfer studies (a relatedness study's "
                             "targets have no train split)")
        if self.kind == "relatedness" and self.evaluation.cot:
            raise ValueError("evaluation.cot is an option of transfer studies; a relatedness study's "
                             "chain-of-thought ablation is relatedness.cot")
        if self.evaluation.cot and self.evaluation.fewshot:
            raise ValueError("evaluation.cot with evaluation.fewshot: chain-of-thought is scored zero-shot; "
                             "set one of them")
        if self.kind == "relatedness" and "evaluation" not in self.model_fields_set:
            # study 2 scores the option labels "1".."4" after a numbered prompt
            object.__setattr__(self, "evaluation", EvaluationSpec(format="numbers"))
        from transfergrid.data.registry import benchmark_names

        known = benchmark_names()
        for task in [*self.tasks, *self.target_only_tasks()]:
            if task not in known:
                raise ValueError(f"unknown task {task!r}{did_you_mean(task, known)}; known tasks: {', '.join(known)}")
        if self.evaluation.cot and self.target_only_tasks():
            raise ValueError(f"evaluation.cot scores numbered answer options; the extra targets "
                             f"({', '.join(self.target_only_tasks())}) are generative")
        if self.evaluation.fewshot and self.target_only_tasks():
            raise ValueError(f"evaluation.fewshot draws examples from a target's train split; the extra targets "
                             f"({', '.join(self.target_only_tasks())}) have none")
        return self

    # --- derived views -------------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        if self.kind == "relatedness":
            return [self.relatedness.benchmark]
        return list(self.grid.tasks)

    @property
    def languages(self) -> list[str]:
        if self.kind == "relatedness":
            r = self.relatedness
            return list(dict.fromkeys([*r.source_languages, *r.target_languages()]))
        return list(self.grid.languages)

    def cells(self) -> list[Cell]:
        return [Cell(t, lang) for t in self.tasks for lang in self.languages]

    def source_cells(self) -> list[Cell]:
        """Every cell some source trains on (a set's members too), in order."""
        if self.kind == "relatedness":
            return [Cell(self.relatedness.benchmark, lang) for lang in self.relatedness.source_languages]
        return list(dict.fromkeys(c for source in self.sources() for c in source))

    def sources(self) -> list[tuple[Cell, ...]]:
        """Each source's member cells (sorted): one cell, or a set trained as one pooled adapter."""
        if self.kind != "relatedness" and self.grid.sources:
            from transfergrid.composition import expand_sources

            return expand_sources(self.grid.sources, self.grid.tasks, self.grid.languages)
        return [(c,) for c in (self.source_cells() if self.kind == "relatedness" else self.cells())]

    def target_cells(self) -> list[Cell]:
        if self.kind == "relatedness":
            return [Cell(self.relatedness.benchmark, lang) for lang in self.relatedness.target_languages()]
        cells = [Cell.parse(s) for s in self.grid.targets] if self.grid.targets else self.cells()
        return cells + [Cell.parse(s) for s in self.grid.extra_targets]

    def target_only_tasks(self) -> list[str]:
        """Tasks of `grid.extra_targets`: evaluated only (test items, no train split)."""
        if self.kind == "relatedness" or self.grid is None:
            return []
        return list(dict.fromkeys(s.partition(":")[0] for s in self.grid.extra_targets))

    def cot_spec(self) -> CotSpec | None:
        """The chain-of-thought settings of the study's CoT evaluations; None = no CoT variant."""
        if self.kind == "relatedness":
            return self.relatedness.cot if self.relatedness.cot.enabled else None
        ev = self.evaluation
        return CotSpec(max_new_tokens=ev.cot_max_new_tokens, batch_size=ev.cot_batch_size) if ev.cot else None

    def train_format(self) -> str:
        return self.training.examples.format or self.evaluation.format

    def train_chat_template(self) -> bool:
        ct = self.training.examples.chat_template
        return self.evaluation.chat_template if ct is None else ct

    def output_path(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")

    def content_hash(self) -> str:
        """A stable hash of everything that determines results (not the name or output dir)."""
        from transfergrid.data.registry import get_benchmark

        # `training` dumps flat (TrainingSpec.flat): the study hash is the same in either spelling
        payload = self.model_dump(mode="json", exclude={"name", "description", "output_dir"})
        payload["splits"].pop("manifests", None)  # where the files lie; their ids enter job keys
        if payload.get("grid") and not payload["grid"]["extra_targets"]:  # hashes as before the field
            payload["grid"].pop("extra_targets")
        if not any(get_benchmark(c.task).generative for c in self.target_cells()):
            payload["evaluation"].pop("max_new_tokens")  # only generative targets use it
        if not payload["evaluation"]["fewshot"]:  # zero-shot studies hash as before few-shot existed
            for name in ("fewshot", "fewshot_seed", "fewshot_sampling", "fewshot_as_multiturn"):
                payload["evaluation"].pop(name)
        if not payload["evaluation"]["cot"]:  # studies without a CoT variant hash as before it existed
            for name in ("cot", "cot_max_new_tokens", "cot_batch_size"):
                payload["evaluation"].pop(name)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- loading ---------------------------------------------------------------------------------
def parse_study(data: dict, source: str = "<study>") -> Study:
    from transfergrid.errors import UserError
    from transfergrid.profiles import apply_profile

    try:
        merged = apply_profile(data)
    except UserError as exc:
        raise StudyError(f"{source}: {exc}") from None
    try:
        return Study.model_validate(merged)
    except ValidationError as exc:
        errors = exc.errors()
        # locations as the file spells them (a flat training key, not the table it lands in)
        lines = [validation_line({**e, "loc": spelled_loc(data, tuple(e.get("loc", ())))}, Study, hint=key_hint)
                 for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise StudyError(f"{source}: " + "; ".join(lines) + more) from None


def load_study(path: str | Path) -> Study:
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: study file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise StudyError(f"{path}: not a UTF-8 text file") from None
    manifests = data.get("splits", {}).get("manifests") if isinstance(data.get("splits"), dict) else None
    if isinstance(manifests, str) and manifests:  # relative to the study file, not the working directory
        data["splits"]["manifests"] = str((path.parent / Path(manifests).expanduser()).resolve())
    return parse_study(data, str(path))
