"""LoRA: low-rank adapters on a trained network's linear layers (Hu et al., 2021).

Notation: a target layer computes y = W x + b with W (d_out, d_in). Its adapter holds
A = ``down.weight`` (r, d_in) and B = ``up.weight`` (d_out, r) and adds

    y = W x + b + m * (alpha / r) * B A dropout(x)

where r is the rank, alpha the scale the adapter was trained with and m the multiplier it is
used at (AUTOMATIC1111's ``<lora:NAME:m>``). A convolution (C_out, C_in, k, k) gets the same
update with A a convolution like it to r channels (r, C_in, k, k) and B a 1 x 1 one (C_out, r,
1, 1), as kohya's LoCon and peft build it; targets name linear layers by default, and
convolutions only when a target names them (``conv1``, ``conv2``). A starts kaiming-uniform
(``nn.Linear``'s default) and B at zero, so a new adapter changes nothing until it is
trained; dropout acts on the input of A, as in peft.

A :class:`LoRANetwork` holds the adapters of one or more named networks ("unet",
"text_encoder"), keyed by ``"<part>.<module path>"``. It leaves the networks untouched: while
attached, a forward hook on each target adds its adapter's term, and detaching removes the
hooks, so the base's parameters, state dict and outputs are exactly what they were. At m = 0 the
hook adds nothing (bit for bit the base). :meth:`LoRANetwork.merge` folds m (alpha / r) B A into
W (no extra cost per step); :meth:`LoRANetwork.unmerge` puts back the weights it saved, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out")
TEXT_TARGETS = ("qkv", "proj")


@dataclass(frozen=True)
class LoRAConfig:
    """Which layers get adapters and how big: ``rank`` r, ``alpha``, the last names of the
    target ``nn.Linear`` s in the UNet (``targets``; its attention by default) and in a
    trainable text encoder (``text_targets``; () leaves it alone), and ``dropout`` on A's
    input while training."""

    rank: int = 4
    alpha: float = 4.0
    targets: tuple[str, ...] = UNET_TARGETS
    text_targets: tuple[str, ...] = TEXT_TARGETS
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "text_targets", tuple(self.text_targets))
        if isinstance(self.rank, bool) or not 1 <= self.rank <= 1024:
            raise ValueError(f"lora rank must be in [1, 1024], got {self.rank!r}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"lora alpha must be a finite number > 0, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora dropout must be in [0, 1), got {self.dropout!r}")
        if not self.targets and not self.text_targets:
            raise ValueError("give at least one target module (e.g. targets=[to_q,to_k,to_v])")


Adapted = nn.Linear | nn.Conv2d


class LoRAAdapter(nn.Module):
    """One low-rank update of a linear layer: x -> (alpha / r) B A dropout(x), (..., d_out);
    of a convolution (``conv=(kernel, stride, padding)``): (B, C_in, H, W) -> (B, C_out, H', W').
    """

    def __init__(self, d_in: int, d_out: int, *, rank: int, alpha: float, dropout: float = 0.0,
                 conv: tuple[int, int, int] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.rank, self.alpha = rank, float(alpha)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if conv is None:
            self.down = nn.Linear(d_in, rank, bias=False)  # A (r, d_in), kaiming-uniform
            self.up = nn.Linear(rank, d_out, bias=False)  # B (d_out, r)
        else:
            kernel, stride, padding = conv
            self.down = nn.Conv2d(
                d_in, rank, kernel, stride, padding, bias=False
            )  # (r, C_in, k, k)
            self.up = nn.Conv2d(rank, d_out, 1, bias=False)  # (C_out, r, 1, 1)
        nn.init.zeros_(self.up.weight)

    @classmethod
    def like(cls, layer: Adapted, *, rank: int, alpha: float, dropout: float = 0.0) -> LoRAAdapter:
        """A new adapter (B = 0) for ``layer``."""
        if isinstance(layer, nn.Linear):
            return cls(layer.in_features, layer.out_features, rank=rank, alpha=alpha,
                       dropout=dropout)  # fmt: skip
        return cls(layer.in_channels, layer.out_channels, rank=rank, alpha=alpha, dropout=dropout,
                   conv=(layer.kernel_size[0], layer.stride[0], layer.padding[0]))  # fmt: skip

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(self.dropout(x))) * self.scale  # (..., d_out)

    def delta_weight(self) -> torch.Tensor:
        """(alpha / r) B A, shaped as W: what merging adds to it at multiplier 1."""
        up, down = self.up.weight, self.down.weight
        if up.ndim == 2:
            return (up @ down) * self.scale  # (d_out, d_in)
        return (
            torch.einsum("or,rikl->oikl", up[:, :, 0, 0], down) * self.scale
        )  # (C_out, C_in, k, k)


def find_targets(network: nn.Module, names: tuple[str, ...]) -> dict[str, Adapted]:
    """The linear layers and convolutions of ``network`` whose path ends with one of ``names``
    as whole dotted parts ("to_k" every attention's key, "attn2.to_k" only the cross-attention's,
    Custom Diffusion's choice), by module path (a convolution with groups, dilation or
    non-square kernels is left out)."""
    return {
        path: module
        for path, module in network.named_modules()
        if any(path == name or path.endswith("." + name) for name in names) and adaptable(module)
    }


def adaptable(module: nn.Module) -> bool:
    """Whether a LoRA can adapt ``module``: a linear layer, or a plain square convolution."""
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.dilation == (1, 1)
            and module.kernel_size[0] == module.kernel_size[1]
            and module.stride[0] == module.stride[1]
            and isinstance(module.padding, tuple) and module.padding[0] == module.padding[1]
            and module.padding_mode == "zeros")  # fmt: skip


def _key(name: str) -> str:
    # ModuleDict keys may not hold dots; module paths never hold slashes.
    return name.replace(".", "/")


class LoRANetwork(nn.Module):
    """The adapters of named networks' layers, keyed ``"<part>.<module path>"``; attach to use."""

    def __init__(self, parts: Mapping[str, nn.Module], adapters: Mapping[str, LoRAAdapter]) -> None:
        super().__init__()
        targets: dict[str, Adapted] = {}
        for name, adapter in adapters.items():
            part, _, path = name.partition(".")
            if part not in parts:
                raise ValueError(f"LoRA module {name!r} is for a {part!r}, which this model lacks "
                                 f"(it has {', '.join(parts)})")  # fmt: skip
            layer = dict(parts[part].named_modules()).get(path)
            if layer is None or not adaptable(layer):
                raise ValueError(f"LoRA module {name!r} names no linear layer or convolution "
                                 f"of this model's {part}: the LoRA was made for another "
                                 "model")  # fmt: skip
            like = LoRAAdapter.like(layer, rank=adapter.rank, alpha=1)
            want = tuple(like.down.weight.shape), tuple(like.up.weight.shape)
            have = tuple(adapter.down.weight.shape), tuple(adapter.up.weight.shape)
            if want != have:
                raise ValueError(
                    f"LoRA module {name!r} does not fit this model: the layer's weight is "
                    f"{tuple(layer.weight.shape)}, so its LoRA's down and up would be "
                    f"{tuple(want[0])} and {tuple(want[1])}, the file's are {have[0]} and "
                    f"{have[1]}; it was made for another model"
                )
            if isinstance(layer, nn.Conv2d):  # A slides over the input as W does
                adapter.down.stride, adapter.down.padding = layer.stride, layer.padding
            targets[name] = layer
        self.names = list(adapters)
        self.adapters = nn.ModuleDict({_key(n): a for n, a in adapters.items()})
        self._targets = targets  # not submodules: the base networks stay out of this one's state
        self.multiplier = 1.0
        self._hooks: list[RemovableHandle] = []
        self._saved: dict[str, torch.Tensor] | None = None  # weights before a merge

    @classmethod
    def create(cls, parts: Mapping[str, nn.Module], config: LoRAConfig) -> LoRANetwork:
        """New adapters (B = 0) on every target of ``parts``: ``config.targets`` in "unet",
        ``config.text_targets`` in "text_encoder"; an error when no layer matches."""
        adapters = {}
        for part, network in parts.items():
            names = config.targets if part == "unet" else config.text_targets
            for path, layer in find_targets(network, names).items():
                adapters[f"{part}.{path}"] = LoRAAdapter.like(
                    layer, rank=config.rank, alpha=config.alpha, dropout=config.dropout
                )
        if not adapters:
            raise ValueError(
                f"no linear layer or convolution is named {', '.join(config.targets)} in "
                "this model: choose targets it has (e.g. to_q, to_k, to_v, to_out, conv1, conv2)"
            )
        return cls(parts, adapters)

    def adapter(self, name: str) -> LoRAAdapter:
        return self.adapters[_key(name)]

    def items(self) -> list[tuple[str, LoRAAdapter]]:
        return [(name, self.adapter(name)) for name in self.names]

    @property
    def attached(self) -> bool:
        return bool(self._hooks)

    @property
    def merged(self) -> bool:
        return self._saved is not None

    def attach(self, multiplier: float = 1.0) -> LoRANetwork:
        """Add every adapter's term (times ``multiplier``) to its layer's output from now on."""
        if not math.isfinite(multiplier):
            raise ValueError(f"a LoRA multiplier must be a finite number, got {multiplier!r}")
        self.multiplier = float(multiplier)
        if not self._hooks:
            for name, layer in self._targets.items():
                self._hooks.append(layer.register_forward_hook(self._hook(self.adapter(name))))
        return self

    def detach(self) -> None:
        """Remove the hooks (unmerging first if merged): the networks are the base again."""
        if self.merged:
            self.unmerge()
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _hook(self, adapter: LoRAAdapter):
        def add(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if self.multiplier == 0.0 or self._saved is not None:
                return None  # nothing to add (or already in the weights): the output as it is
            return output + self.multiplier * adapter(args[0]).to(output.dtype)

        return add

    @torch.no_grad()
    def merge(self) -> None:
        """Fold multiplier (alpha / r) B A into each target's weight; the hooks then add
        nothing. The weights before are kept for :meth:`unmerge`."""
        if self.merged:
            raise ValueError("this LoRA is merged already; unmerge it first")
        self._saved = {name: layer.weight.detach().clone() for name, layer in self._targets.items()}
        for name, layer in self._targets.items():
            delta = self.adapter(name).delta_weight().to(layer.weight)
            layer.weight.add_(self.multiplier * delta)

    @torch.no_grad()
    def unmerge(self) -> None:
        """Put back the weights :meth:`merge` changed, bit for bit."""
        if self._saved is None:
            raise ValueError("this LoRA is not merged")
        for name, layer in self._targets.items():
            layer.weight.copy_(self._saved[name])
        self._saved = None
