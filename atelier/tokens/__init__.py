"""Sampling discrete image tokens, kept apart from every network (as ``diffusion/`` is).

- ``logits.py``: temperature, top-k and top-p filtering, classifier-free guidance on logits (a
  wrapper around the logits function), and drawing each row from its own generator.
- ``autoregressive.py``: one token at a time, left to right (DALL-E; minGPT's ``generate``).
- ``masked.py``: MaskGIT's iterative parallel decoding and its mask schedules.
- ``options.py``: the options a token model's folder stores as its defaults.

Every sampler takes a logits function and never a network: whether that function keeps a KV
cache, or guides with an unconditional pass, is the caller's business (``pipelines/``).
"""
