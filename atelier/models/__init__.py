"""Denoising networks: pure ``nn.Module``\\ s with ``forward(x, t, context) -> Tensor``."""

from atelier.models.unet import UNet, UNetConfig
from atelier.models.unet_diffusers import (
    state_dict_from_diffusers,
    state_dict_to_diffusers,
    unet_config_to_diffusers,
)

__all__ = [
    "UNet",
    "UNetConfig",
    "state_dict_from_diffusers",
    "state_dict_to_diffusers",
    "unet_config_to_diffusers",
]
