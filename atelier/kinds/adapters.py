"""Files that change a trained diffusion model without being one: LoRA adapters and textual
inversion's learned words. Found by name, read bounded, written atomically, safetensors only.

<home>/loras/NAME/pytorch_lora_weights.safetensors   diffusers' key format (what it loads)
<home>/loras/NAME/NAME.safetensors                   kohya's (AUTOMATIC1111, ComfyUI)
<home>/loras/NAME/lora.json, README.md               what it was trained on; the card
<home>/embeddings/NAME/learned_embeds.safetensors    {word: (D,) tensor}
<home>/embeddings/NAME/embedding.json, README.md

A LoRA is named by such a NAME or by a path to a .safetensors file of either key format (or a
folder holding one); an embedding likewise. Reading checks the header first: at most
:data:`MAX_TENSORS` tensors of at most two dimensions, their elements within the parameter
budget, before any tensor is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from atelier.atomic import write_atomic
from atelier.budget import check_parameters
from atelier.models.lora import LoRANetwork
from atelier.models.lora_keys import to_diffusers, to_kohya
from atelier.paths import home
from atelier.safeload import read_header
from atelier.text.embeddings import TokenVectors

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
EMBEDS_FILE = "learned_embeds.safetensors"
LORA_INFO = "lora.json"
EMBEDDING_INFO = "embedding.json"
MAX_TENSORS = 4096
MAX_WORDS = 64


def loras_dir() -> Path:
    return home() / "loras"


def embeddings_dir() -> Path:
    return home() / "embeddings"


def _installed(root: Path, pattern: str) -> list[str]:
    return sorted(p.parent.name for p in root.glob(pattern)) if root.is_dir() else []


def installed_loras() -> list[str]:
    """Names of the LoRAs installed here (``atelier train lora`` installs them)."""
    return _installed(loras_dir(), f"*/{DIFFUSERS_FILE}")


def installed_embeddings() -> list[str]:
    """Names of the embeddings installed here (``atelier train textual-inversion``)."""
    return _installed(embeddings_dir(), f"*/{EMBEDS_FILE}")


MAX_INFO_BYTES = 65536


@dataclass(frozen=True)
class Installed:
    """An installed LoRA or embedding as a picker lists it: what it is, the model it was
    trained on (None when its info file is missing or unreadable) and the words it teaches or
    was trained with."""

    name: str
    kind: str  # "lora" or "embedding"
    base: str | None
    words: tuple[str, ...]


def _info(file: Path) -> dict[str, Any]:
    """A ``lora.json`` / ``embedding.json``, bounded; {} for a missing, huge or broken one (a
    folder copied from someone else still lists, without its facts)."""
    try:
        if file.stat().st_size > MAX_INFO_BYTES:
            return {}
        info = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


def installed_adapters() -> list[Installed]:
    """Every installed LoRA and embedding, LoRAs first, each by name."""
    out = []
    for name in installed_loras():
        info = _info(loras_dir() / name / LORA_INFO)
        token = _text(info.get("token"))
        out.append(Installed(name, "lora", _text(info.get("base")), (token,) if token else ()))
    for name in installed_embeddings():
        folder = embeddings_dir() / name
        try:
            words = tuple(sorted(w for w in embedding_shapes(folder / EMBEDS_FILE) if len(w) <= 64))
        except (OSError, ValueError):
            continue  # not a safetensors file: nothing a prompt could load
        out.append(Installed(name, "embedding", _text(_info(folder / EMBEDDING_INFO).get("base")),
                             words))  # fmt: skip
    return out


def _resolve(name: str | Path, root: Path, file: str, what: str, known: list[str]) -> Path:
    path = Path(name).expanduser()
    if path.suffix == ".safetensors" and path.is_file():
        return path
    for folder in (path, root / str(name)) if path.name == str(name) else (path,):
        if (folder / file).is_file():
            return folder / file
    if path.is_dir():
        found = sorted(path.glob("*.safetensors"))
        if len(found) == 1:
            return found[0]
    raise FileNotFoundError(
        f"no {what} {str(name)!r}: give a .safetensors file or the name of an installed one "
        f"({', '.join(known) or 'none installed yet'})"
    )


def resolve_lora(name: str | Path) -> Path:
    """The LoRA file a name or path means; a clear error listing the installed names."""
    return _resolve(name, loras_dir(), DIFFUSERS_FILE, "LoRA", installed_loras())


def resolve_embedding(name: str | Path) -> Path:
    """The embeddings file a name or path means; a clear error listing the installed names."""
    return _resolve(name, embeddings_dir(), EMBEDS_FILE, "embedding", installed_embeddings())


def read_tensors(file: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors and header metadata, its header checked first."""
    shapes = read_header(file)
    if len(shapes) > MAX_TENSORS:
        raise ValueError(f"{file} holds {len(shapes)} tensors, more than a {what} can "
                         f"({MAX_TENSORS})")  # fmt: skip
    if any(len(shape) > 4 for shape in shapes.values()):
        raise ValueError(f"{file} holds tensors of more than 4 dimensions: not a {what}")
    count = 0
    for shape in shapes.values():
        count += int(torch.Size(shape).numel())
    check_parameters(count, f"the {what} {file.name}")
    try:
        with safe_open(str(file), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{file} is corrupt or not a safetensors file ({err})") from None
    if any(not t.is_floating_point() or not torch.isfinite(t).all() for t in tensors.values()):
        raise ValueError(f"{file} holds tensors that are not finite floats: not a {what}")
    return tensors, metadata


def read_embeddings(file: Path) -> dict[str, torch.Tensor]:
    """``{word: (D,) float32}`` from a learned_embeds file (one vector per word)."""
    tensors, _ = read_tensors(file, "learned embedding")
    if not tensors or len(tensors) > MAX_WORDS:
        raise ValueError(f"{file} holds {len(tensors)} words; an embeddings file holds 1 to "
                         f"{MAX_WORDS}")  # fmt: skip
    out = {}
    for word, tensor in tensors.items():
        if tensor.ndim == 2 and tensor.shape[0] == 1:
            tensor = tensor[0]  # diffusers writes (1, D) for a one-vector word
        if tensor.ndim != 1:
            raise ValueError(f"{file}: {word!r} holds {tuple(tensor.shape)}; a learned word is "
                             "one (D,) vector")  # fmt: skip
        out[word] = tensor.float()
    return out


def _card(folder: Path, card: str, info_file: str, info: dict[str, Any]) -> None:
    write_atomic(folder / info_file, json.dumps(info, indent=2) + "\n")
    write_atomic(folder / "README.md", card)


def save_lora(network: LoRANetwork, folder: Path, *, name: str, card: str,
              info: dict[str, Any]) -> Path:  # fmt: skip
    """Write a LoRA folder: both key formats, ``lora.json`` (``info``) and the card."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors, metadata = to_diffusers(network)
    write_atomic(folder / DIFFUSERS_FILE, safetensors_bytes(tensors, metadata=metadata))
    write_atomic(folder / f"{name}.safetensors", safetensors_bytes(to_kohya(network)))
    _card(folder, card, LORA_INFO, info)
    return folder


def save_embeddings(vectors: TokenVectors, folder: Path, *, card: str,
                    info: dict[str, Any]) -> Path:  # fmt: skip
    """Write an embedding folder: ``learned_embeds.safetensors``, ``embedding.json``, card."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / EMBEDS_FILE, safetensors_bytes(vectors.as_dict()))
    _card(folder, card, EMBEDDING_INFO, info)
    return folder


def install(folder: Path, root: Path, name: str) -> Path:
    """Copy a trained LoRA or embedding folder to ``root/name`` (file by file, atomically)."""
    target = root / name
    target.mkdir(parents=True, exist_ok=True)
    for file in sorted(folder.iterdir()):
        if file.is_file():
            write_atomic(target / file.name, file.read_bytes())
    return target


def embedding_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """The words an embeddings file teaches and their vectors' shapes, from its header alone."""
    return read_header(file)
