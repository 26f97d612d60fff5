"""How the denoising network runs, apart from what it computes: its precision, and compiled or not.

- **precision** is a sampling option (``SamplingOptions.precision``), so a PNG records it and
  ``atelier replay`` honours it: it changes the pixels. ``fp32`` runs everything in float32;
  ``bf16`` runs the denoising network under ``torch.autocast(bfloat16)``: convolutions, matmuls
  and attention cast to bfloat16, and the ops between them (GroupNorm, SiLU) take their
  bfloat16 outputs as they come (measured, torch 2.13 CPU); the output is cast back to float32,
  and the text encoder, the sampler's arithmetic and the decoder stay float32. It is refused
  where the device does not compute bfloat16 natively: emulated, it is slower than fp32.
- **compile** is a process's choice (``Model.compile()``, ``atelier serve --compile``): the
  UNet goes through ``torch.compile`` (inductor), whose kernels round otherwise than eager ones:
  an fp32 image differed from eager's by one level at most, a bf16 one by up to 25 (measured in
  docs/latency.md). PNGs drawn so say ``runtime: compiled``; ``replay`` allows an fp32 one
  ``metadata.COMPILED_TOLERANCE`` (2) levels and no other image any, and judges a compiled bf16
  image only when replaying compiled.

Either keeps a batch equal to its singles: every call still runs at fixed rows, and a wider call
is used only after it gave the same bits (``fixed_batch.py``), checked in the precision and the
runtime that draw.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, get_args

import torch
from torch import nn

from atelier.diffusion.options import Precision
from atelier.paths import home

PRECISIONS: tuple[str, ...] = get_args(Precision)


def bf16_unsupported(device: torch.device) -> str | None:
    """Why ``device`` cannot run bf16 natively, or None when it can.

    On CPU: x86 needs AVX-512 BF16 or AMX-BF16, ARM its BF16 extension (what
    ``torch.cpu.get_capabilities()`` reports); oneDNN would otherwise emulate bfloat16 in
    float32 registers (``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is true on any AVX-512
    CPU), slower than fp32. On CUDA: ``torch.cuda.is_bf16_supported`` without emulation.
    """
    if device.type == "cpu":
        caps = torch.cpu.get_capabilities()
        native = any(caps.get(name) for name in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))
        if native and torch.backends.mkldnn.is_available():
            return None
        return (
            f"this CPU ({caps.get('cpu_name', caps.get('architecture', 'unknown'))}) does not "
            "compute bfloat16 natively (it needs AVX-512 BF16 or AMX on x86, BF16 on ARM, and "
            "torch built with oneDNN); emulated bf16 is slower than fp32"
        )
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"{torch.cuda.get_device_name(device)} does not compute bfloat16 natively"
    return f"bf16 is checked only on CPU and CUDA, not on {device.type}"


def check_precision(precision: str, device: torch.device) -> None:
    """Raise ValueError naming the valid precisions, or why ``device`` cannot run this one."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "bf16" and (why := bf16_unsupported(device)) is not None:
        raise ValueError(f"precision bf16 is refused here: {why}; use fp32")


def in_precision(
    fn: Callable[..., torch.Tensor], precision: str, device: torch.device
) -> Callable[..., torch.Tensor]:
    """``fn`` run in ``precision`` (checked), its output float32."""
    check_precision(precision, device)
    if precision == "fp32":
        return fn

    def run(*args: Any) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return fn(*args).float()

    return run


@contextmanager
def weights_cast_once(device: torch.device) -> Iterator[None]:
    """Keep autocast's bfloat16 copies of the weights for the whole block: autocast drops them
    when its outermost context exits, so without an outer (disabled) one every network call
    casts every weight again (2 rows a call: 0.75x fp32's speed, 0.94x with this)."""
    with torch.autocast(device.type, enabled=False):
        yield


# ------------------------------------------------------------------------------ compile


def compile_cache() -> str:
    """Inductor's on-disk cache (compiled kernels and graphs), under atelier's home unless
    ``TORCHINDUCTOR_CACHE_DIR`` says otherwise; a second process reuses what the first built."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(home() / "inductor"))
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


def check_compiler(device: torch.device) -> None:
    """Raise RuntimeError when inductor cannot build kernels for ``device``: a C++ compiler on
    CPU, Triton on a GPU."""
    if device.type == "cpu":
        named = os.environ.get("CXX")
        if not (shutil.which(named) if named else any(
                shutil.which(c) for c in ("g++", "c++", "clang++"))):  # fmt: skip
            raise RuntimeError(
                "compiling needs a C++ compiler (g++ or clang++ on PATH, or CXX naming one): "
                "install it (Debian: apt-get install g++), or run without compiling"
            )
    elif device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "compiling for CUDA needs Triton (pip install triton), or run without compiling"
            ) from None


def compiled(module: nn.Module | Callable[..., Any], device: torch.device) -> Any:
    """``module`` (or a function) through ``torch.compile`` at fixed shapes (``fixed_batch``
    calls at a few row counts, each compiled once, on first use)."""
    check_compiler(device)
    compile_cache()
    return torch.compile(module, dynamic=False)
