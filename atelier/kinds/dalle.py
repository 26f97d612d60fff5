"""The DALL-E kind: a decoder-only transformer drawing image tokens one at a time, row-major,
after the caption's BPE tokens (Ramesh et al., 2021) or reading the frozen MiniLM's states by
cross-attention (Parti), sampled with a KV cache, temperature, top-k, top-p and
classifier-free guidance on logits (``tokens/options.py``:
:class:`~atelier.tokens.options.AutoregressiveOptions`).

A folder holds the transformer, its image tokenizer and its text tokenizer (or its text
encoder's name); its layout and loading are shared with MaskGIT's (``kinds/token_model.py``).
"""

from __future__ import annotations

from atelier.kinds.token_model import TokenFamily, TokenKind
from atelier.models.token_transformer import AutoregressiveTransformer
from atelier.pipelines.token2image import AutoregressivePipeline
from atelier.tokens.options import AutoregressiveOptions

FAMILY = TokenFamily(
    kind="dalle",
    title="autoregressive token transformer (DALL-E)",
    label="autoregressive token model",
    network=AutoregressiveTransformer,
    options=AutoregressiveOptions,
    pipeline=AutoregressivePipeline,
    # One token per pass: four images share each pass at 0.2 s per 64 px image where one
    # alone takes 0.4 s (256 tokens, the shapes-dalle recipe's size, one core).
    rows=4,
)
KIND = TokenKind(FAMILY)
