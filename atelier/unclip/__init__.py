"""unCLIP's math apart from its networks (Ramesh et al. 2022, "Hierarchical Text-Conditional
Image Generation with CLIP Latents"): the operations on CLIP embeddings it samples and edits with,
and the options of its two-stage sample.

- ``embeddings.py``: DALL-E 2's pick of the closer of two prior samples, spherical interpolation
  and text diffs, on unit CLIP embeddings.
- ``options.py``: :class:`UnCLIPOptions`, the prior's and the decoder's sampling settings.

The prior and the decoder are diffusion models like any other: their schedules, samplers,
guidance and losses are ``diffusion/``'s.
"""
