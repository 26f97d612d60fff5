"""The MaskGIT kind: a bidirectional transformer filling a grid of masked image tokens in a few
parallel steps, keeping the most confident each time (Chang et al., 2022), read with the
caption's BPE tokens as a prefix or the frozen MiniLM's states by cross-attention, guided on
logits (``tokens/options.py``: :class:`~atelier.tokens.options.MaskedOptions`).

A folder holds the transformer, its image tokenizer and its text tokenizer (or its text
encoder's name); its layout and loading are shared with DALL-E's (``kinds/token_model.py``).
"""

from __future__ import annotations

from atelier.kinds.token_model import TokenFamily, TokenKind
from atelier.models.token_transformer import MaskedTokenTransformer
from atelier.pipelines.token2image import MaskedPipeline
from atelier.tokens.options import MaskedOptions

FAMILY = TokenFamily(
    kind="maskgit",
    title="masked token transformer (MaskGIT)",
    label="masked token model",
    network=MaskedTokenTransformer,
    options=MaskedOptions,
    pipeline=MaskedPipeline,
    # Each pass already covers every token: more images per pass gain nothing on a CPU.
    rows=1,
)
KIND = TokenKind(FAMILY)
