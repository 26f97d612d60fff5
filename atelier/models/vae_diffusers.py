"""Conversion between :class:`~atelier.models.vae.AutoencoderKL` and diffusers' ``AutoencoderKL``.

Our module tree mirrors diffusers' parameter names except where diffusers wraps a single layer in
a list, so converting a state dict is a string rename in either direction. The latent scale
factor is not part of :class:`~atelier.models.vae.VAEConfig` (it is measured from data, not a
property of the network), so the diffusers config gets diffusers' default and a caller that
knows the measured value overrides ``scaling_factor``.
"""

from __future__ import annotations

from typing import Any

import torch

from atelier.models.unet_diffusers import rename_keys
from atelier.models.vae import VAEConfig

# (ours, diffusers) fragments of parameter names, matched with the dots around them.
_RENAMES = (
    (".downsample.", ".downsamplers.0."),
    (".upsample.", ".upsamplers.0."),
    (".to_out.", ".to_out.0."),
)


def vae_config_to_diffusers(config: VAEConfig) -> dict[str, Any]:
    """Keyword arguments for diffusers' ``AutoencoderKL(**kwargs)`` that build the same network."""
    levels = len(config.block_channels)
    return {
        "in_channels": config.in_channels,
        "out_channels": config.in_channels,
        "down_block_types": ("DownEncoderBlock2D",) * levels,
        "up_block_types": ("UpDecoderBlock2D",) * levels,
        "block_out_channels": tuple(config.block_channels),
        "layers_per_block": config.layers_per_block,
        "act_fn": "silu",
        "latent_channels": config.latent_channels,
        "norm_num_groups": config.groups,
        "use_quant_conv": True,
        "use_post_quant_conv": True,
        "mid_block_add_attention": config.mid_attention,
    }


def vae_state_dict_to_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our :class:`~atelier.models.vae.AutoencoderKL` state dict -> diffusers' layout."""
    return rename_keys(state_dict, _RENAMES, source=0)


def vae_state_dict_from_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKL`` state dict -> our layout."""
    return rename_keys(state_dict, _RENAMES, source=1)
