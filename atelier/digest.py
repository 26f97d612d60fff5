"""A short SHA-256 over module weights: names a latent space, a cache, or a model (A1111 hash)."""

from __future__ import annotations

import hashlib

from torch import nn


def state_digest(*named: tuple[str, nn.Module], salt: str = "", length: int = 12) -> str:
    """Hex digest of the named modules' state dicts (keys and bytes, in sorted order)."""
    digest = hashlib.sha256(salt.encode())
    for name, module in named:
        for key, value in sorted(module.state_dict().items()):
            digest.update(f"{name}.{key}".encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:length]
