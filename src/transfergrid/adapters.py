"""One base model with many LoRA adapters, switched in place, and the switch that scoring uses."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any

from transfergrid.errors import ModelError
from transfergrid.models import LoadedModel


class AdapterSet:
    """One base model with many LoRA adapters, switched in place (never merged, saved or reloaded).

    `activate(None)` disables every adapter layer, so the forward pass is exactly the base model's.
    `.model` is the module to call; it stays the same object across `activate` calls. The first
    `add` wraps the base model's layers in place: score through the set (or `activate(None)`), not
    through the original model object.
    """

    def __init__(self, loaded: LoadedModel | Any):
        self.base = loaded.model if isinstance(loaded, LoadedModel) else loaded
        self.fingerprint = loaded.fingerprint if isinstance(loaded, LoadedModel) else None
        self._peft = None
        self.active: str | None = None

    @property
    def model(self):
        return self._peft if self._peft is not None else self.base

    @property
    def names(self) -> list[str]:
        return list(self._peft.peft_config) if self._peft is not None else []

    def add(self, name: str, path: str | Path) -> None:
        """Load the PEFT adapter at `path` under `name`; the active variant does not change."""
        path = Path(path)
        if name in self.names:
            raise ModelError(f"adapter name {name!r} is already loaded")
        if not (path / "adapter_config.json").is_file():
            raise ModelError(f"adapter {path}: no adapter_config.json (expected a PEFT LoRA adapter directory)")
        self._check_base(path)
        from peft import PeftModel

        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.base, str(path), adapter_name=name, is_trainable=False)
            else:
                self._peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
        except Exception as exc:
            if self._peft is None:
                _strip_adapter_layers(self.base)  # a failed first load leaves injected layers behind
            elif name in self._peft.peft_config:
                self._peft.delete_adapter(name)
            raise ModelError(f"adapter {path} does not fit this base model: {_mismatch_line(exc)}") from exc
        self._peft.eval()
        self.activate(self.active)

    def _check_base(self, path: Path) -> None:
        meta = path / "transfergrid.json"
        if self.fingerprint is None or not meta.is_file():
            return
        trained_on = json.loads(meta.read_text()).get("model", {}).get("fingerprint")
        if trained_on and trained_on != self.fingerprint:
            raise ModelError(f"adapter {path} was trained on another base model (fingerprint "
                             f"{trained_on[:16]}, this model {self.fingerprint[:16]})")

    def activate(self, name: str | None) -> None:
        """Make `name` the active adapter; None = the base model (every adapter layer disabled)."""
        if name is None:
            if self._peft is not None:
                self._peft.base_model.disable_adapter_layers()
        else:
            if name not in self.names:
                raise ModelError(f"no adapter named {name!r} (loaded: {', '.join(self.names) or 'none'})")
            self._peft.base_model.enable_adapter_layers()
            self._peft.set_adapter(name, inference_mode=True)
        self.active = name

    def remove(self, name: str) -> None:
        """Unload an adapter and free its weights."""
        if name not in self.names:
            raise ModelError(f"no adapter named {name!r} (loaded: {', '.join(self.names) or 'none'})")
        if self.active == name:
            self.activate(None)
        with warnings.catch_warnings():  # PEFT's "Adapter X was active which is now deleted": we
            warnings.filterwarnings("ignore", message="Adapter .* was active", category=UserWarning)
            self._peft.delete_adapter(name)  # track the active variant ourselves (self.active)
        if not self._peft.peft_config:
            # PEFT keeps naming the deleted adapter as active (its generate() then fails on the
            # missing config): with none left, put the base model's own layers back.
            _strip_adapter_layers(self.base)
            self._peft = None
        self.activate(self.active)


def _strip_adapter_layers(model) -> None:
    """Put every PEFT-wrapped layer's original module back in place."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, module in wrapped:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, module.get_base_layer())
    if hasattr(model, "peft_config"):  # else the next PeftModel warns "Already found a peft_config"
        del model.peft_config


def _mismatch_line(exc: BaseException) -> str:
    """The informative line of an adapter load error (PyTorch puts the size mismatch on a later line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "size mismatch" in line or "not found" in line.lower() or "missing" in line.lower():
            return line
    return lines[0] if lines else type(exc).__name__


# --- the variant to score (scoring.score_variants) ----------------------------------------------


def is_module(obj) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def switch_variant(adapters, variant: str | None):
    """Switch the adapter in place and return a context to score in.

    `adapters` is a AdapterSet (`activate`/`use`, None = base), a PEFT model (`set_adapter`,
    None = `disable_adapter()`), or a plain model (only None).
    """
    if is_module(adapters) and variant is None:
        if hasattr(adapters, "peft_config") and hasattr(adapters, "disable_adapter"):
            return adapters.disable_adapter()
        return contextlib.nullcontext()
    for name in ("activate", "use", "set_adapter"):
        if hasattr(adapters, name):
            getattr(adapters, name)(variant)
            return contextlib.nullcontext()
    raise TypeError(f"{type(adapters).__name__} cannot switch adapters (no activate/use/set_adapter)")


def forward_model(adapters):
    """The module to call: the object itself if it is a model, else the AdapterSet's `.model`."""
    return adapters if is_module(adapters) else adapters.model
