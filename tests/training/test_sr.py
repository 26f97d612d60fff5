"""Super-resolution: conditioning augmentation, the task, a tiny run end to end, the command."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.super_resolution import (
    augment,
    consistent_with,
    degrade,
    project_to_low,
    upsample,
)
from atelier.models.unet import UNet, UNetConfig
from atelier.pipelines.metadata import read_params
from atelier.training.sr_task import SuperResolutionTask

TINY_UNET = UNetConfig(in_channels=6, out_channels=3, block_channels=(8, 16), layers_per_block=1,
                       attention_levels=(False, False), context_dim=None, groups=4,
                       noise_level_conditioning=True)  # fmt: skip


def test_degrade_upsample_and_augmentation_levels():
    hi = torch.rand(2, 3, 16, 16) * 2 - 1
    lo = degrade(hi, 8)
    assert lo.shape == (2, 3, 8, 8)
    torch.testing.assert_close(lo[0, 0, 0, 0], hi[0, 0, :2, :2].mean())
    up = upsample(lo, 16)
    assert up.shape == hi.shape and up.abs().max() <= 1
    abar = DiffusionConfig().alphas_cumprod()
    noise = torch.randn(up.shape, generator=torch.Generator().manual_seed(0))
    out = augment(up, torch.tensor([0, 900]), abar, noise=noise)
    torch.testing.assert_close(out[0], up[0])  # level 0 leaves the image clean
    assert (out[1] - up[1]).abs().mean() > 0.3


def test_crops_cut_the_same_window_of_image_and_conditioning():
    no_attention = UNetConfig(in_channels=6, out_channels=3, block_channels=(8, 16), groups=4,
                              attention_levels=(False, False), context_dim=None,
                              noise_level_conditioning=True)  # fmt: skip
    task = SuperResolutionTask(UNet(no_attention), DiffusionConfig(), low=8, crop=8)
    hi = torch.rand(3, 3, 16, 16) * 2 - 1
    up = hi.flip(-1)  # any conditioning: the window must be the same in both
    torch.manual_seed(0)
    a, b = task._crop(hi, up, 16)
    assert a.shape == b.shape == (3, 3, 8, 8)
    for k in range(3):
        (y, x), = {(y, x) for y in range(0, 9, 2) for x in range(0, 9, 2)
                   if torch.equal(hi[k, :, y : y + 8, x : x + 8], a[k])}  # fmt: skip
        assert torch.equal(up[k, :, y : y + 8, x : x + 8], b[k])
    seen = {task._crop(hi, up, 16)[0][0].sum().item() for _ in range(20)}
    assert len(seen) > 1  # the window moves
    loss, _ = task.loss((hi, ["x"] * 3), 0)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="without self-attention"):
        attending = dataclasses.replace(TINY_UNET, attention_levels=(False, True))
        SuperResolutionTask(UNet(attending), DiffusionConfig(), low=8, crop=8)


def test_task_loss_and_its_input_checks():
    task = SuperResolutionTask(UNet(TINY_UNET), DiffusionConfig(), low=8)
    loss, logs = task.loss((torch.rand(4, 3, 16, 16) * 2 - 1, ["x"] * 4), 0)
    assert loss.ndim == 0 and torch.isfinite(loss) and logs["t"].shape == (4,)
    loss.backward()
    assert UNet(TINY_UNET).noise_level_embedding is not None
    with pytest.raises(ValueError, match="6 input channels"):
        plain = UNetConfig(context_dim=None, block_channels=(8, 16), groups=4,
                           attention_levels=(False, False))  # fmt: skip
        SuperResolutionTask(UNet(plain), DiffusionConfig(), low=8)
    with pytest.raises(ValueError, match="noise_level exactly"):
        UNet(TINY_UNET)(torch.zeros(1, 6, 16, 16), torch.zeros(1))


def test_projection_makes_the_area_average_the_input_and_keeps_the_detail():
    g = torch.Generator().manual_seed(0)
    x0, lo = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    out = project_to_low(x0, lo)
    torch.testing.assert_close(degrade(out, 8), lo)
    # Within each 2 x 2 block the differences between pixels (the detail) are x0's.
    torch.testing.assert_close(
        out[..., ::2, :] - out[..., 1::2, :], x0[..., ::2, :] - x0[..., 1::2, :]
    )
    torch.testing.assert_close(project_to_low(out, lo), out)  # a projection: idempotent
    with pytest.raises(ValueError, match="not a whole multiple"):
        project_to_low(torch.zeros(1, 3, 15, 15), lo[:1])
    wrapped = consistent_with(lambda x, sigma, t: x * 0.5, lo)
    torch.testing.assert_close(degrade(wrapped(x0, torch.ones(2), torch.zeros(2)), 8), lo)


def test_train_tiny_upscaler_then_upscale(tmp_path, monkeypatch):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    tiny = ["data.n=16", "train.batch_size=4", "train.max_steps=2", "train.warmup_steps=0",
            "train.ema_start=0", "train.checkpoint_every=1", "unet.block_channels=[8,16,16]",
            "unet.groups=4"]  # fmt: skip
    # --install: `atelier upscale` below uses it as its default model, shapes-sr-32-64.
    result = CliRunner().invoke(app, ["train", "shapes-sr-32-64", *tiny, "--install"])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "models" / "shapes-sr-32-64" / "README.md").read_text()
    assert "bicubic: PSNR" in card and "diffusion upscaler: PSNR" in card
    assert "bicubic + projection: PSNR" in card
    # Shipping it: export writes a float16 folder that loads and upscales like the original.
    half = tmp_path / "half"
    exported = CliRunner().invoke(app, ["export", "shapes-sr-32-64", "-o", str(half), "--half"])
    assert exported.exit_code == 0, exported.output
    from safetensors.torch import load_file

    from atelier.kinds.upscaler import load_upscaler

    assert {v.dtype for v in load_file(str(half / "unet.safetensors")).values()} == {torch.float16}
    assert (half / "README.md").read_text() == card
    lo = [Image.new("RGB", (32, 32), (150, 90, 120))]
    a = np.asarray(load_upscaler(half)(lo, seeds=[0])[0], dtype=float)
    b = np.asarray(load_upscaler("shapes-sr-32-64")(lo, seeds=[0])[0], dtype=float)
    assert np.abs(a - b).mean() < 1.0
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 32), (150, 90, 120)).save(small)
    out = CliRunner().invoke(
        app, ["upscale", str(small), "--steps", "2", "-o", str(tmp_path / "o")]
    )
    assert out.exit_code == 0, out.output
    path = out.output.strip().splitlines()[-1]
    assert Image.open(path).size == (64, 64) and read_params(path).mode == "upscale"
    wrong = tmp_path / "wrong.png"
    Image.new("RGB", (40, 40)).save(wrong)
    bad = CliRunner().invoke(app, ["upscale", str(wrong)])
    assert bad.exit_code == 2 and "takes 32x32 images" in bad.output
    upscaled = np.asarray(Image.open(path), dtype=float)
    assert np.isfinite(upscaled).all()
    # The projection holds each 2 x 2 block's mean to the input's colour (up to clamping and 8
    # bits) even from a 2-step model.
    blocks = upscaled.reshape(32, 2, 32, 2, 3).mean((1, 3))
    assert np.abs(blocks - [150, 90, 120]).mean() < 1
