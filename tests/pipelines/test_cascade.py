"""Hires fix and the Imagen-style cascade through atelier generate, and replay of the result."""

import torch
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.options import SamplingOptions
from atelier.models.unet import UNet, UNetConfig
from atelier.pipelines.metadata import read_params
from tests.pipelines.conftest import install_by_name

TINY_UNET = UNetConfig(in_channels=6, out_channels=3, block_channels=(8, 16), layers_per_block=1,
                       attention_levels=(False, False), context_dim=None, groups=4,
                       noise_level_conditioning=True)  # fmt: skip


def test_hires_fix_and_cascade_through_generate_and_replay(tiny_model_dir, tmp_path, monkeypatch):
    from atelier.kinds.upscaler import UpscalerConfig, save_upscaler

    install_by_name(tiny_model_dir, tmp_path, monkeypatch)
    torch.manual_seed(0)
    fast = SamplingOptions(steps=2, guidance=1.0, sampler="euler")
    config = UpscalerConfig("shapes-sr-32-64", 32, 64, TINY_UNET, defaults=fast)
    save_upscaler(UNet(TINY_UNET), config, tmp_path / "models" / "shapes-sr-32-64", card="# sr\n")
    out = tmp_path / "gen"
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "a red circle", "--model", str(tiny_model_dir),
                                 "--steps", "2", "--hires", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.png")
    assert Image.open(path).size == (64, 64)
    assert read_params(path).extra["cascade"] == [32, 64]
    replay = runner.invoke(app, ["replay", str(path)])
    assert replay.exit_code == 0 and "pixels match" in replay.output
    missing = runner.invoke(app, ["generate", "x", "--model", str(tiny_model_dir),
                                  "--cascade", "32,64,256"])  # fmt: skip
    assert missing.exit_code == 2 and "no upscaler from 64 to 256 px" in missing.output
    wrong = runner.invoke(
        app, ["generate", "x", "--model", str(tiny_model_dir), "--cascade", "64,128"]
    )
    assert wrong.exit_code == 2 and "this model makes 32 px" in wrong.output


def test_upscaler_batch_equals_single_runs():
    import numpy as np

    from atelier.kinds.upscaler import UpscalerConfig
    from atelier.pipelines.upscale import Upscaler

    torch.manual_seed(0)
    fast = SamplingOptions(steps=3, guidance=1.0, sampler="euler_ancestral")
    upscaler = Upscaler(UNet(TINY_UNET), UpscalerConfig("sr", 32, 64, TINY_UNET, defaults=fast))
    images = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    batch = upscaler(images, seeds=[4, 5, 6])
    for k in range(3):
        alone = upscaler(images[k : k + 1], seeds=[4 + k])[0]
        np.testing.assert_array_equal(np.asarray(alone), np.asarray(batch[k]))
