"""Build a network from a config someone else wrote and load their weights into it, bounded.

A model folder's config.json says how big a network to build, and a shared folder may lie: a
config asking for ``layers_per_block: 1000000`` or ``block_channels: [2048, 2048, 2048]`` would
build a network of many gigabytes before any weight is read. So :func:`build_and_load` first
bounds the config's numbers (:func:`check_config_values`), builds the network on the meta device
(no memory), counts its parameters against the budget and compares every tensor's shape with
the safetensors file's header (read without loading the tensors), and only then builds it for
real and loads the weights (or, for a network the file fills entirely, takes the file's tensors
in place of the meta ones: no random initialisation for the load to overwrite).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn
from torch.overrides import TorchFunctionMode

from atelier.budget import check_parameters

M = TypeVar("M", bound=nn.Module)

# Numbers in a config are sizes, counts and rates; none sensible is larger than this.
MAX_CONFIG_NUMBER = 1_000_000
# Fields that stack layers: each unit builds whole blocks, so they are bounded far lower.
DEPTH_FIELDS = frozenset(
    {"layers_per_block", "transformer_depth", "layers", "depth", "num_layers", "num_hidden_layers"}
)
MAX_DEPTH = 64
MAX_TUPLE = 16


class _NoMetaNormal(TorchFunctionMode):
    """Skip ``normal_`` on meta tensors: it fills nothing there, yet its meta kernel imports
    torch._dynamo on first use (about a second of a cold start; ``nn.Embedding`` calls it)."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Collection[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is nn.init.normal_ or func is torch.Tensor.normal_:
            tensor = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


def check_config_values(values: Mapping[str, Any], where: str) -> None:
    """Refuse (ValueError naming the field) a config number no model here could need: depths
    over :data:`MAX_DEPTH`, sequences over :data:`MAX_TUPLE` items, any number over
    :data:`MAX_CONFIG_NUMBER`, and non-finite floats."""
    for name, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        if isinstance(value, list | tuple) and len(value) > MAX_TUPLE:
            raise ValueError(f"{where}: {name} has {len(value)} entries (at most {MAX_TUPLE})")
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{where}: {name} is {item}, not a finite number")
            limit = MAX_DEPTH if name in DEPTH_FIELDS else MAX_CONFIG_NUMBER
            if abs(item) > limit:
                raise ValueError(f"{where}: {name} = {item} is over the limit of {limit:,}")


def read_header(file: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a safetensors file, from its header alone."""
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing; the model folder is incomplete")
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{file} is corrupt or not a safetensors file ({err})") from None


def _mismatch(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]],
              file: Path) -> None:  # fmt: skip
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or extra or wrong:
        parts = [
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", extra),
                                ("shape mismatch", wrong))
            if keys
        ]  # fmt: skip
        raise ValueError(f"{file} does not match config.json ({'; '.join(parts)})")


def load_weights(module: nn.Module, file: Path, *, ignored: Collection[str] = ()) -> None:
    """Load ``file`` into ``module``, every missing, extra or misshapen tensor named; tensors
    named in ``ignored`` may be in the file and are left out."""
    header = {k: v for k, v in read_header(file).items() if k not in ignored}
    _mismatch({k: tuple(v.shape) for k, v in module.state_dict().items()}, header, file)
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{file} is corrupt or not a safetensors file ({err})") from None
    module.load_state_dict({k: v for k, v in state.items() if k not in ignored})


def build_and_load(
    build: Callable[[], M],
    file: Path,
    *,
    what: str,
    stored: Callable[[M], nn.Module] = lambda m: m,
    ignored: Collection[str] = (),
    assign: bool = False,
) -> M:
    """``build()`` checked on the meta device (its size against the budget, its shapes against
    ``file``'s header), then built for real with ``file``'s weights loaded. ``stored`` picks the
    part of the network the file holds (a CLIP's file lacks its text tower); ``ignored`` names
    tensors the file may hold that the network does not use.

    With ``assign``, for a network whose every parameter and buffer is in the file, the meta
    network takes the file's tensors (cast to its dtypes) and is never built for real: a large
    one's random initialisation costs more than reading its weights."""
    header = {k: v for k, v in read_header(file).items() if k not in ignored}
    with torch.device("meta"), _NoMetaNormal():
        module = build()
    state = stored(module).state_dict()
    check_parameters(sum(t.numel() for t in state.values() if t.is_meta), what)
    _mismatch({k: tuple(v.shape) for k, v in state.items()}, header, file)
    if not assign:
        module = build()
        load_weights(stored(module), file, ignored=ignored)
        return module
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{file} is corrupt or not a safetensors file ({err})") from None
    stored(module).load_state_dict(
        {k: tensors[k].to(v.dtype) for k, v in state.items()}, assign=True
    )
    left = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"{what} has tensors the file does not fill ({', '.join(left[:5])}); "
                         "load it without assign")  # fmt: skip
    return module
