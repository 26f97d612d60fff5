"""PSNR and SSIM against torchmetrics on the same images."""

import pytest
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from atelier.eval.image_quality import psnr, ssim


def pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(3, 3, 32, 32, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a, b


def test_psnr_matches_torchmetrics_per_image():
    a, b = pair()
    ours = psnr(a, b)
    for i in range(3):
        theirs = peak_signal_noise_ratio(a[i : i + 1], b[i : i + 1], data_range=1.0)
        assert ours[i].item() == pytest.approx(theirs.item(), rel=1e-5)


def test_ssim_matches_torchmetrics():
    a, b = pair(1)
    ours = ssim(a, b)
    theirs = structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")
    torch.testing.assert_close(ours, theirs.double(), rtol=1e-4, atol=1e-5)
    assert ssim(a, a).min().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one shape"):
        ssim(a, b[:, :, :16])
