"""The training configuration of a study (`[training]`): three records, each shaped like what uses it.

- `[training.adapter]` (`AdapterConfig`): PEFT's `LoraConfig` names (`r`, `lora_alpha`,
  `lora_dropout`, `target_modules` incl. PEFT's own `"all-linear"`, `bias`) and `method` (LoRA or full
  fine-tuning);
- `[training.optimizer]` (`OptimizerConfig`): AdamW and its schedule, epochs, batches and their order;
- `[training.examples]` (`ExamplesConfig`): how items become training examples (format, chat
  template, encoding, max lengths, how many).

The flat spelling of earlier study files (`[training] rank = 32`, ...) still loads: each flat key
(`FLAT`) names exactly one field of one table. Giving a field in both spellings is an error.

Job keys, the study hash and adapter metadata see `TrainingSpec.flat()` (also what `model_dump`
gives): the flat dict they always held, so the keys of existing studies stay byte-identical. The flat
names also read (`spec.rank`) and copy (`spec.model_copy(update={"batch_size": 4})`) as before.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from transfergrid.prompts import Format

REFERENCE_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ALL_LINEAR = "all-linear"  # PEFT: every linear layer but the output layer


class Spec(BaseModel):
    """The base of every study-file table: frozen once validated; an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AdapterConfig(Spec):
    """PEFT's `LoraConfig` fields (their names and the reference's values), plus `method`."""

    method: Literal["lora", "full"] = "lora"
    r: int = Field(default=32, ge=1)
    lora_alpha: float = Field(default=64, gt=0)
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: list(REFERENCE_TARGET_MODULES), min_length=1,
        description="module names (q, k, v, o, gate, up, down map to each model's own) or 'all-linear'")
    # PEFT's "none" only: biases stay frozen. One value, so not in job keys (FLAT leaves it out).
    bias: Literal["none"] = "none"

    @field_validator("target_modules")
    @classmethod
    def _all_linear_alone(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list) and ALL_LINEAR in v:
            raise ValueError(f"write target_modules = {ALL_LINEAR!r} (a string, as in PEFT), not inside a list")
        return v


class OptimizerConfig(Spec):
    """AdamW, its learning-rate schedule, epochs and batches (the HF Trainer's defaults where the
    reference left them)."""

    learning_rate: float = Field(default=5e-5, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=8, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    warmup_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    scheduler: Literal["linear", "constant", "cosine"] = "linear"
    select_best_epoch: bool = True
    sampler: Literal["length_grouped", "random"] = Field(
        default="length_grouped", description="random: the HF Trainer's seeded random order (the reference)")
    auto_batch_size: bool = Field(
        default=False, description="start at batch_size and shrink it on out-of-memory (HF auto_find_batch_size)")
    gradient_checkpointing: bool = Field(
        default=False, description="recompute activations in the backward pass: much less memory, "
                                   "about a third more time, the same adapter")


class ExamplesConfig(Spec):
    """How training items become examples: prompt format, chat template, encoding and lengths."""

    format: Format | None = Field(default=None, description="training prompt format; default: the evaluation format")
    chat_template: bool | None = Field(default=None, description="default: as in evaluation")
    # The reference profile's encoding (docs/reference-profile.md).
    encoding: Literal["default", "reference"] = Field(
        default="default", description="default: the evaluation prompt + gold continuation, answer-only loss; "
                                       "reference: the reference pipeline's per-task prompts, lengths and loss masks")
    max_length: int = Field(default=512, ge=8)
    max_lengths: dict[str, int] = Field(default_factory=dict, description="per task: max_length instead of the default")
    limit: int | None = Field(default=None, ge=1, description="train on the first N training items (and the "
                                                              "first ceil(N/9) validation items) of each source")


TABLES: dict[str, type[Spec]] = {"adapter": AdapterConfig, "optimizer": OptimizerConfig, "examples": ExamplesConfig}

# flat key of earlier study files -> (table, field); every field but adapter.bias has one.
FLAT: dict[str, tuple[str, str]] = {
    "method": ("adapter", "method"), "rank": ("adapter", "r"), "alpha": ("adapter", "lora_alpha"),
    "dropout": ("adapter", "lora_dropout"), "target_modules": ("adapter", "target_modules"),
    **{name: ("optimizer", name) for name in OptimizerConfig.model_fields},
    **{name: ("examples", name) for name in ExamplesConfig.model_fields},
}
_HOME = {field: f"{table}.{field}" for table, field in FLAT.values()}  # nested name -> its table


def nest(data: dict[str, Any]) -> dict[str, Any]:
    """A `[training]` table with its flat keys moved into their tables (unknown keys stay where they
    are, for the validation error to name them). ValueError when one field is given twice."""
    out: dict[str, Any] = {k: (dict(v) if k in TABLES and isinstance(v, dict) else v) for k, v in data.items()
                           if k not in FLAT}
    for name, value in data.items():
        if name not in FLAT:
            continue
        table, field = FLAT[name]
        sub = out.setdefault(table, {})
        if not isinstance(sub, dict):
            continue  # `adapter = 3`: the validation error names that
        if field in sub:
            raise ValueError(f"training.{name} and training.{table}.{field} are one field; give it once")
        sub[field] = value
    return out


def merge_training(defaults: dict[str, Any], explicit: dict[str, Any]) -> dict[str, Any]:
    """`explicit` over `defaults` (a profile's), table by table and field by field, whatever the
    spelling of either; a field's value is replaced whole."""
    low, high = nest(defaults), nest(explicit)
    out = {**low, **high}
    for table in TABLES:
        if isinstance(low.get(table), dict) and isinstance(high.get(table), dict):
            out[table] = {**low[table], **high[table]}
    return out


def spelled_loc(raw: dict[str, Any], loc: tuple) -> tuple:
    """An error location as the study file spells it: ("training", "adapter", "r") is
    ("training", "rank") where the file wrote the flat key."""
    training = raw.get("training") if isinstance(raw, dict) else None
    if len(loc) < 3 or loc[0] != "training" or not isinstance(training, dict):
        return loc
    flat = next((n for n, where in FLAT.items() if where == (loc[1], loc[2]) and n in training), None)
    return ("training", flat, *loc[3:]) if flat else loc


def key_hint(loc: tuple) -> str | None:
    """Where an unknown training key belongs: `training.r` or `training.adapter.rank` ->
    'training.adapter.r'; None elsewhere."""
    if len(loc) < 2 or loc[0] != "training":
        return None
    key = str(loc[-1])
    home = ".".join(FLAT[key]) if key in FLAT and len(loc) > 2 else _HOME.get(key)
    return f"training.{home}" if home else None


class TrainingSpec(Spec):
    """`[training]`: the adapter, the optimiser and the examples (see the module docstring)."""

    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    examples: ExamplesConfig = Field(default_factory=ExamplesConfig)

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data: Any) -> Any:
        return nest(data) if isinstance(data, dict) else data

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """What `[training]` accepts: its tables and the flat keys."""
        return sorted([*TABLES, *FLAT])

    def flat(self, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """The flat view (JSON values) that job keys, the study hash and adapter metadata hold."""
        dumps = {table: getattr(self, table).model_dump(mode="json") for table in TABLES}
        return {name: dumps[table][field] for name, (table, field) in FLAT.items() if name not in exclude}

    @model_serializer(mode="plain")
    def _serialize(self) -> dict[str, Any]:
        return self.flat()

    def __getattr__(self, name: str) -> Any:
        where = FLAT.get(name)
        if where is None:
            return super().__getattr__(name)
        return getattr(getattr(self, where[0]), where[1])

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> TrainingSpec:
        """Also takes flat names (`update={"batch_size": 4}`: train.py's out-of-memory restarts)."""
        update = dict(update or {})
        by_table: dict[str, dict[str, Any]] = {}
        for name in [k for k in update if k in FLAT]:
            table, field = FLAT[name]
            by_table.setdefault(table, {})[field] = update.pop(name)
        for table, fields in by_table.items():
            update[table] = getattr(self, table).model_copy(update=fields)
        return super().model_copy(update=update, deep=deep)

    def max_length_for(self, task: str) -> int:
        return self.examples.max_lengths.get(task, self.examples.max_length)
