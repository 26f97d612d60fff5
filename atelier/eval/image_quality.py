"""Full-reference image quality: PSNR and SSIM (Wang et al. 2004), as torchmetrics defines them.

Images are (B, 3, H, W) in [0, 1] (``data_range`` 1). SSIM uses an 11 x 11 Gaussian window of
sigma 1.5, K1 = 0.01, K2 = 0.03, computed per channel over the whole image (reflection padding
at the borders, as torchmetrics does) and averaged; tests check both against torchmetrics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image (B,)."""
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp(min=1e-20))


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    data_range: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image (B,)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"need two (B, C, H, W) batches of one shape, got {a.shape}, {b.shape}")
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c).to(a.device)
    pad = (window - 1) // 2
    x = F.pad(a.double(), (pad,) * 4, mode="reflect")
    y = F.pad(b.double(), (pad,) * 4, mode="reflect")

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = (blur(x * x) - mu_x**2).clamp(min=0)
    var_y = (blur(y * y) - mu_y**2).clamp(min=0)
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.flatten(1).mean(1)
