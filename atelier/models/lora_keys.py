"""The key names other tools give LoRA tensors, to and from a
:class:`~atelier.models.lora.LoRANetwork`.

Two formats, both safetensors, told apart by their keys:

- **diffusers** (what ``save_lora_weights`` writes, peft's names): ``unet.<diffusers module
  path>.lora_A.weight`` (A, r x d_in) and ``.lora_B.weight`` (B); alpha is not a tensor but the
  file's ``lora_adapter_metadata`` JSON (``unet.r``, ``unet.lora_alpha``, with
  ``alpha_pattern`` for modules that differ); without it alpha = r (scale 1), diffusers'
  convention.
- **kohya** (kohya-ss sd-scripts, read by AUTOMATIC1111 and ComfyUI):
  ``lora_unet_<diffusers module path, dots as underscores>.lora_down.weight`` (A),
  ``.lora_up.weight`` (B) and ``.alpha`` (a scalar); a text encoder's under ``lora_te_``.

The UNet's module paths are diffusers' after :mod:`atelier.models.unet_diffusers`' renames
(``attn1.to_out`` is ``attn1.to_out.0``), so a UNet converted to diffusers reads the same file.
Underscored kohya names are not reversible by string rules (``transformer_blocks``), so reading
them builds the table of every linear layer's kohya name from the model itself, as sd-scripts
names them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from atelier.models.lora import LoRAAdapter, LoRANetwork, adaptable
from atelier.models.unet_diffusers import name_to_diffusers

LoRAFormat = Literal["diffusers", "kohya"]
LORA_FORMATS: tuple[LoRAFormat, ...] = ("diffusers", "kohya")
METADATA_KEY = "lora_adapter_metadata"  # diffusers' name for its JSON in the file's header
KOHYA_PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te_"}


def diffusers_name(name: str) -> str:
    """``"unet.<our path>"`` -> ``"unet.<diffusers path>"`` (a text encoder's path is kept)."""
    part, _, path = name.partition(".")
    return f"{part}.{name_to_diffusers(path) if part == 'unet' else path}"


def kohya_name(name: str) -> str:
    """``"unet.<our path>"`` -> ``"lora_unet_<diffusers path with underscores>"``."""
    part, _, path = diffusers_name(name).partition(".")
    return KOHYA_PREFIXES[part] + path.replace(".", "_")


def linear_names(parts: Mapping[str, nn.Module]) -> list[str]:
    """Every layer of ``parts`` a LoRA can adapt (linear layers and plain convolutions) as
    ``"<part>.<path>"``: what a LoRA file can name."""
    return [f"{part}.{path}" for part, network in parts.items()
            for path, module in network.named_modules() if adaptable(module)]  # fmt: skip


def detect_format(keys: list[str]) -> LoRAFormat:
    """Which format a file's keys are in; a ValueError naming both when neither."""
    if any(k.startswith(tuple(KOHYA_PREFIXES.values())) for k in keys):
        return "kohya"
    if any(".lora_A." in k or ".lora_B." in k for k in keys):
        return "diffusers"
    sample = ", ".join(keys[:3]) or "no tensors"
    raise ValueError(
        f"not a LoRA file in a known format (keys like {sample}); atelier reads diffusers' "
        "(unet.<module>.lora_A.weight / lora_B.weight) and kohya's "
        "(lora_unet_<module>.lora_down.weight / lora_up.weight / alpha)"
    )


def to_diffusers(network: LoRANetwork) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of the diffusers format."""
    tensors, per_part = {}, {}
    for name, adapter in network.items():
        key = diffusers_name(name)
        tensors[f"{key}.lora_A.weight"] = adapter.down.weight.detach().float().contiguous()
        tensors[f"{key}.lora_B.weight"] = adapter.up.weight.detach().float().contiguous()
        part, _, path = key.partition(".")
        per_part.setdefault(part, {})[path] = (adapter.rank, adapter.alpha)
    metadata = {}
    for part, modules in per_part.items():
        rank = Counter(r for r, _ in modules.values()).most_common(1)[0][0]
        alpha = Counter(a for _, a in modules.values()).most_common(1)[0][0]
        metadata |= {
            f"{part}.r": rank,
            f"{part}.lora_alpha": alpha,
            f"{part}.lora_dropout": 0.0,
            f"{part}.target_modules": sorted(modules),
            f"{part}.rank_pattern": {p: r for p, (r, _) in modules.items() if r != rank},
            f"{part}.alpha_pattern": {p: a for p, (_, a) in modules.items() if a != alpha},
        }
    return tensors, {"format": "pt", METADATA_KEY: json.dumps(metadata, indent=2, sort_keys=True)}


def to_kohya(network: LoRANetwork) -> dict[str, torch.Tensor]:
    """Tensors of the kohya format."""
    tensors = {}
    for name, adapter in network.items():
        key = kohya_name(name)
        tensors[f"{key}.lora_down.weight"] = adapter.down.weight.detach().float().contiguous()
        tensors[f"{key}.lora_up.weight"] = adapter.up.weight.detach().float().contiguous()
        tensors[f"{key}.alpha"] = torch.tensor(float(adapter.alpha))
    return tensors


def _grouped(tensors: Mapping[str, torch.Tensor], suffixes: tuple[str, ...]) -> dict[str, dict]:
    """``{module key: {suffix: tensor}}``; a key with none of ``suffixes`` is refused."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        for suffix in suffixes:
            if key.endswith(suffix):
                groups.setdefault(key[: -len(suffix)], {})[suffix] = tensor
                break
        else:
            raise ValueError(f"unexpected tensor {key!r} in the LoRA file (expected keys ending "
                             f"{', '.join(suffixes)})")  # fmt: skip
    return groups


def _adapter(
    name: str, down: torch.Tensor | None, up: torch.Tensor | None, alpha: float | None
) -> LoRAAdapter:
    ok = down is not None and up is not None and down.ndim == up.ndim
    linear = ok and down.ndim == 2 and down.shape[0] == up.shape[1]
    conv = (ok and down.ndim == 4 and down.shape[0] == up.shape[1] and up.shape[2:] == (1, 1)
            and down.shape[2] == down.shape[3])  # fmt: skip
    if not (linear or conv):
        raise ValueError(f"LoRA module {name!r} needs a down (r, d_in) and an up (d_out, r) "
                         "matrix of the same rank (or, for a convolution, (r, C_in, k, k) and "
                         "(C_out, r, 1, 1))")  # fmt: skip
    rank = down.shape[0]
    alpha = rank if alpha is None else alpha
    if linear:
        adapter = LoRAAdapter(down.shape[1], up.shape[0], rank=rank, alpha=alpha)
    else:  # stride and padding become the layer's when a LoRANetwork pairs them
        k = down.shape[2]
        adapter = LoRAAdapter(down.shape[1], up.shape[0], rank=rank, alpha=alpha,
                              conv=(k, 1, k // 2))  # fmt: skip
    adapter.down.weight.data.copy_(down)
    adapter.up.weight.data.copy_(up)
    return adapter


def from_tensors(
    parts: Mapping[str, nn.Module],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> tuple[LoRANetwork, LoRAFormat]:
    """A network for ``parts`` from a file's tensors in either format (detected), and the
    format; a ValueError naming what does not fit the model."""
    fmt = detect_format(list(tensors))
    ours = {diffusers_name(n) if fmt == "diffusers" else kohya_name(n): n
            for n in linear_names(parts)}  # fmt: skip
    adapters = {}
    if fmt == "kohya":
        for key, group in _grouped(tensors, (".lora_down.weight", ".lora_up.weight", ".alpha")
                                   ).items():  # fmt: skip
            name = _known(key, ours)
            alpha = group.get(".alpha")
            alpha = None if alpha is None else float(alpha.float().reshape(-1)[0])
            adapters[name] = _adapter(name, group.get(".lora_down.weight"),
                                      group.get(".lora_up.weight"), alpha)  # fmt: skip
    else:
        config = {}
        if metadata and METADATA_KEY in metadata:
            try:
                config = json.loads(metadata[METADATA_KEY])
            except json.JSONDecodeError:
                raise ValueError(f"the LoRA file's {METADATA_KEY} is not JSON") from None
        for key, group in _grouped(tensors, (".lora_A.weight", ".lora_B.weight")).items():
            name = _known(key, ours)
            part, _, path = key.partition(".")
            pattern = config.get(f"{part}.alpha_pattern") or {}
            alpha = pattern.get(path, config.get(f"{part}.lora_alpha"))
            adapters[name] = _adapter(name, group.get(".lora_A.weight"),
                                      group.get(".lora_B.weight"), alpha)  # fmt: skip
    return LoRANetwork(parts, adapters), fmt


def _known(key: str, ours: Mapping[str, str]) -> str:
    if key not in ours:
        raise ValueError(f"the LoRA file names {key!r}, a layer this model does not have: it was "
                         "made for another model (check its base)")  # fmt: skip
    return ours[key]
