"""The transformer's position-wise feed-forward network (Vaswani et al., 2017), GELU as in GPT
and CLIP: (B, T, D) -> Linear(D, rD) -> GELU -> Linear(rD, D), r = ``mlp_ratio``.

Shared by the text transformer, its attention pooling and the image-token transformers; as an
``nn.Sequential`` its parameters keep the names ``0.*`` and ``2.*`` every checkpoint uses.
"""

from __future__ import annotations

from torch import nn


def feed_forward(width: int, mlp_ratio: int) -> nn.Sequential:
    """The MLP of a transformer block of ``width`` channels, hidden width ``mlp_ratio * width``."""
    return nn.Sequential(
        nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
    )
