"""Conversion between :class:`~atelier.models.unet.UNet` and diffusers' ``UNet2DConditionModel``.

Our module tree mirrors diffusers' parameter names except for a few fragments renamed for
readability, so converting a state dict is a string rename in either direction. The pooled text
vector maps to diffusers' ``class_embed_type="projection"``: the same Linear-SiLU-Linear added to
the time embedding, fed through ``class_labels``. (``addition_embed_type="text"`` would instead
pool the token states itself, which is not what :class:`UNet` does.)
"""

from __future__ import annotations

from typing import Any

import torch

from atelier.models.unet import UNetConfig

# (ours, diffusers) fragments of parameter names, matched with the dots around them.
_RENAMES = (
    (".pooled_embedding.", ".class_embedding."),
    (".downsample.", ".downsamplers.0."),
    (".upsample.", ".upsamplers.0."),
    (".to_out.", ".to_out.0."),
    (".ff.geglu.", ".ff.net.0.proj."),
    (".ff.proj_out.", ".ff.net.2."),
)


def unet_config_to_diffusers(config: UNetConfig) -> dict[str, Any]:
    """Keyword arguments for ``UNet2DConditionModel(**kwargs)`` that build the same network."""
    if config.noise_level_conditioning or config.attention_positions:
        raise ValueError(
            "noise-level conditioning and attention positions have no diffusers equivalent"
        )
    if config.context_dim is None:
        # diffusers' UNet2DConditionModel always has cross-attention.
        raise ValueError("only a UNetConfig with context_dim set has a diffusers equivalent")
    last = len(config.block_channels) - 1
    # diffusers' "attention_head_dim" is, despite its name, the number of heads per level; levels
    # without attention ignore it.
    heads = tuple(
        config.heads_at(level) if on or level == last else 1
        for level, on in enumerate(config.attention_levels)
    )
    kwargs: dict[str, Any] = {
        # CoordConv channels are inputs to diffusers' model: feed it torch.cat([x, coords]).
        "in_channels": config.in_channels + (2 if config.coord_channels else 0),
        "out_channels": config.out_channels,
        "down_block_types": tuple(
            "CrossAttnDownBlock2D" if on else "DownBlock2D" for on in config.attention_levels
        ),
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "up_block_types": tuple(
            "CrossAttnUpBlock2D" if on else "UpBlock2D" for on in reversed(config.attention_levels)
        ),
        "block_out_channels": tuple(config.block_channels),
        "layers_per_block": config.layers_per_block,
        "transformer_layers_per_block": config.transformer_depth,
        "norm_num_groups": config.groups,
        "norm_eps": 1e-5,
        "cross_attention_dim": config.context_dim,
        "attention_head_dim": heads,
        "use_linear_projection": True,
        "resnet_time_scale_shift": "default" if config.time_injection == "add" else "scale_shift",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "act_fn": "silu",
        "downsample_padding": 1,
        "mid_block_scale_factor": 1.0,
        "center_input_sample": False,
        "upcast_attention": False,
        "dropout": 0.0,
    }
    if config.cross_attention_only is not None:
        kwargs["only_cross_attention"] = tuple(config.cross_attention_only)
        kwargs["mid_block_only_cross_attention"] = False
    if config.guidance_embedding:
        # LCM's w-embedding, fed as ``timestep_cond`` (diffusers' LCM pipeline computes it).
        kwargs["time_cond_proj_dim"] = config.block_channels[0]
    if config.pooled_dim is not None:
        kwargs["class_embed_type"] = "projection"
        kwargs["projection_class_embeddings_input_dim"] = config.pooled_dim
    return kwargs


def rename_keys(
    state_dict: dict[str, torch.Tensor], renames: tuple[tuple[str, str], ...], source: int
) -> dict[str, torch.Tensor]:
    """Rename keys from side ``source`` (0 ours, 1 diffusers) of ``renames`` to the other side."""
    renamed = {}
    for key, value in state_dict.items():
        name = "." + key  # a leading dot lets prefixes match like inner fragments
        for pair in renames:
            name = name.replace(pair[source], pair[1 - source])
        renamed[name[1:]] = value
    return renamed


def state_dict_to_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our :class:`UNet` state dict -> one ``UNet2DConditionModel.load_state_dict`` accepts."""
    return rename_keys(state_dict, _RENAMES, source=0)


def state_dict_from_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``UNet2DConditionModel`` state dict -> one our :class:`UNet` accepts."""
    return rename_keys(state_dict, _RENAMES, source=1)


def name_to_diffusers(name: str) -> str:
    """One module or parameter name of our :class:`UNet` -> diffusers' (``attn1.to_out`` ->
    ``attn1.to_out.0``): what a LoRA file names a layer by."""
    renamed = f".{name}."  # dots on both sides let a fragment match at either end
    for ours, theirs in _RENAMES:
        renamed = renamed.replace(ours, theirs)
    return renamed[1:-1]
