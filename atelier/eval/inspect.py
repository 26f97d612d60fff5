"""``atelier inspect``: a model as a tree of components with parameter counts.

The first exercise of any course on Stable Diffusion: map the parts of a trained model onto the
design (text encoder -> cross-attention in the UNet's transformer blocks; VAE encoder/decoder
around the latent space). Each line shows a module, its class and its parameters (children
included); ``depth`` limits how far the tree unfolds.
"""

from __future__ import annotations

from torch import nn


def count(module: nn.Module) -> int:
    """Parameters of ``module`` and its children (shared ones once)."""
    return sum(p.numel() for p in module.parameters())


def _human(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def tree(components: dict[str, nn.Module], *, depth: int = 2) -> str:
    """An indented tree of ``components`` down to ``depth`` levels below each component."""
    total = sum(count(m) for m in components.values())
    lines = [f"total {_human(total)} parameters ({total:,})"]

    def walk(name: str, module: nn.Module, level: int) -> None:
        n = count(module)
        share = f"{100 * n / total:5.1f}%" if total else "     -"
        lines.append(f"{'  ' * level}{name} ({type(module).__name__}) {_human(n)} {share}")
        if level < depth:
            for child_name, child in module.named_children():
                if count(child) or level + 1 < depth:
                    walk(child_name, child, level + 1)

    for name, module in components.items():
        walk(name, module, 0)
    return "\n".join(lines)
