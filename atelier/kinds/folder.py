"""A trained model is a folder: ``config.json`` naming its ``kind``, safetensors weights and a
model card (``README.md``). This module finds folders and reads and writes their files; what the
files hold is each kind's business (``kinds/registry.py`` maps a kind to its module).

A model is named by a path, or by the name of a folder in :func:`model_dirs` (models trained
here in ``$ATELIER_HOME/models`` first, then the ones shipped inside the package). Weights are
safetensors only; every file is written atomically, and loading checks each file against
``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

from atelier.atomic import write_atomic
from atelier.paths import home
from atelier.safeload import check_config_values

SHIPPED = Path(str(resources.files("atelier"))) / "weights"
# A config.json is a few kilobytes; anything far larger is not one (and is not read whole).
MAX_CONFIG_BYTES = 1 << 20


def model_dirs() -> tuple[Path, ...]:
    """Where model names are looked up: models trained here (``$ATELIER_HOME/models``) first, so a
    retrained model replaces the shipped one of its name, then the models shipped in the package."""
    return (home() / "models", SHIPPED)


def is_shipped(name: str) -> bool:
    """Whether a model of this name ships inside the package (``atelier/weights/name``)."""
    return (SHIPPED / name / "config.json").is_file()


def known_models() -> dict[str, Path]:
    """Every model folder findable by name, the first of each name in :func:`model_dirs` order."""
    found: dict[str, Path] = {}
    for root in model_dirs():
        for config in sorted(root.glob("*/config.json")) if root.is_dir() else []:
            found.setdefault(config.parent.name, config.parent)
    return found


def resolve(model: str | Path) -> Path:
    """A model folder from a path or a name; a clear error listing the known names."""
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return path
    if path.name == str(model):
        for root in model_dirs():
            if (root / str(model) / "config.json").is_file():
                return root / str(model)
    known = sorted(known_models())
    raise FileNotFoundError(
        f"no model at {model!r}: pass a folder holding config.json, or one of the known model "
        f"names ({', '.join(known) or 'none installed yet'}); `atelier train` writes new ones"
    )


def read_config(folder: Path) -> dict[str, Any]:
    """``folder/config.json`` as a dict; a clear error if it is missing, huge or not JSON."""
    file = folder / "config.json"
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError(f"over {MAX_CONFIG_BYTES} bytes")
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{file} is missing; a model folder needs one") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{file} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file} is not a JSON object")
    return data


def open_folder(model: str | Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """The folder of ``model`` and its config.json, which must say ``"kind": kind``."""
    folder = resolve(model)
    data = read_config(folder)
    if data.get("kind") != kind:
        raise ValueError(f"{folder} holds a {data.get('kind')!r} model, not a {kind} model")
    return folder, data


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """A config dataclass from JSON values (lists back to tuples), naming unknown keys."""
    if not isinstance(values, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}")
    check_config_values(values, cls.__name__)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def save_weights(module: nn.Module, file: Path, *, dtype: torch.dtype = torch.float32) -> None:
    """``module``'s state as safetensors, atomically; floating tensors cast to ``dtype``
    (``torch.float16`` halves a shipped file; loading casts back to the module's dtype)."""
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in module.state_dict().items()
    }
    write_atomic(file, save(state))


def write_folder(folder: str | Path, config: dict[str, Any], card: str) -> Path:
    """The card, then ``config.json`` last (a folder is complete once its config is there)."""
    out = Path(folder)
    write_atomic(out / "README.md", card)
    write_atomic(out / "config.json", json.dumps(config, indent=2))
    return out


def install(folder: Path, name: str) -> Path:
    """Copy a model folder to ``$ATELIER_HOME/models/name``, where ``--model name`` finds it."""
    target = home() / "models" / name
    target.mkdir(parents=True, exist_ok=True)
    # config.json last: a half-installed folder is never taken for a model.
    for file in sorted(folder.iterdir(), key=lambda f: f.name == "config.json"):
        if file.is_file():
            write_atomic(target / file.name, file.read_bytes())
        elif file.is_dir():
            install(file, f"{name}/{file.name}")
    return target
