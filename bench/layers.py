"""Which atelier package imports which, and whether every arrow points down.

    .venv/bin/python bench/layers.py          # the table; exit 1 if an arrow points up

The layers, lowest first (a package may import its own layer and those below):

    atomic, paths, digest,  files, state, hashes, the resource budget, bounded loading
    budget, safeload
    shapes                  the shapes world
    text, diffusion,        text encoders; the diffusion math; token sampling; the GAN
    tokens, gan, data,      losses; datasets; unCLIP's CLIP-space operations and options
    unclip
    models                  networks
    pipelines               inference assembly
    kinds                   model folders: one module per kind, and the registry
    eval                    measurement
    training                recipes and runners (pipelines only for sample grids)
    serve                   the HTTP API
    cli, demo, __main__     the command line

Also checked: no CLI module imports another CLI module's private (``_``) name, and no library
module reads ``sys.argv``. ``tests/test_layers.py`` runs :func:`problems`.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "atelier"
LAYERS = [
    {"atomic", "paths", "digest", "budget", "safeload", "__init__"},
    {"shapes"},
    {"text", "diffusion", "tokens", "gan", "data", "unclip"},
    {"models"},
    {"pipelines"},
    {"kinds"},
    {"eval"},
    {"training"},
    {"serve"},
    {"cli", "demo", "__main__"},
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
# Training assembles a pipeline only to draw its sample grids.
TRAINING_SAMPLE_GRIDS = {
    "atelier.training.ldm",
    "atelier.training.token_tasks",
    "atelier.training.unclip_tasks",
    "atelier.training.gan_task",
    "atelier.training.lcm_task",
}


def package(module: str) -> str:
    """``atelier.kinds.registry`` -> ``kinds``; ``atelier.digest`` -> ``digest``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(root: Path = ROOT) -> dict[str, list[tuple[str, tuple[str, ...], int]]]:
    """Every atelier module's atelier imports: (imported module, names, line)."""
    out: dict[str, list[tuple[str, tuple[str, ...], int]]] = {}
    for file in sorted(root.rglob("*.py")):
        parts = file.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = []
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("atelier"):
                found.append((node.module, tuple(a.name for a in node.names), node.lineno))
            elif isinstance(node, ast.Import):
                found += [(a.name, (), node.lineno) for a in node.names
                          if a.name.startswith("atelier")]  # fmt: skip
        out[module] = found
    return out


def reads_argv(module: str, root: Path = ROOT) -> bool:
    parts = module.split(".")
    file = root.parent.joinpath(*parts)
    file = file / "__init__.py" if file.is_dir() else file.with_suffix(".py")
    return "sys.argv" in file.read_text()


def problems(root: Path = ROOT) -> list[str]:
    """Every upward import, private CLI import and library read of sys.argv, one line each."""
    found = []
    for source, targets in imports(root).items():
        src = package(source)
        for target, names, line in targets:
            dst = package(target)
            where = f"{source}:{line} imports {target}"
            if RANK[dst] > RANK[src]:
                found.append(f"{where}: {dst} is above {src}")
            elif src == "training" and dst == "pipelines" and source not in TRAINING_SAMPLE_GRIDS:
                found.append(f"{where}: training uses pipelines only for sample grids")
            if src == "cli" and dst == "cli" and target != source:
                private = [n for n in names if n.startswith("_")]
                if private:
                    found.append(f"{where}: another CLI module's private {', '.join(private)}")
        if src not in ("cli", "__main__", "demo") and reads_argv(source, root):
            found.append(f"{source} reads sys.argv: library code takes the command as input")
    return found


def table() -> str:
    """Package -> the packages it imports, with counts, lowest layer first."""
    edges: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for source, targets in imports().items():
        for target, _, _ in targets:
            if package(target) != package(source):
                edges[package(source)][package(target)] += 1
    lines = []
    for layer in LAYERS:
        for name in sorted(layer):
            uses = ", ".join(f"{t} ({n})" for t, n in sorted(edges[name].items(),
                                                          key=lambda kv: RANK[kv[0]]))  # fmt: skip
            lines.append(f"{name:<10} -> {uses or '-'}")
    return "\n".join(lines)


def main() -> int:
    print(table())
    found = problems()
    print(f"\n{len(found)} upward or forbidden imports")
    for line in found:
        print(f"  {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
