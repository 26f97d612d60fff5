"""``atelier export --format diffusers``: folders that diffusers' ``from_pretrained`` loads, whose
UNet and VAE compute what atelier's do, and whose StableDiffusionPipeline loop
(``bench/diffusers_parity.py``) draws atelier's pixels; what has no diffusers form is refused."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.plan import make_plan
from atelier.kinds.diffusion import Model, save_model
from atelier.kinds.registry import load_model
from atelier.models.unet import UNet, coordinate_grid
from tests.numerics import assert_close_to
from tests.pipelines.conftest import tiny_model

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("parity", ROOT / "bench" / "diffusers_parity.py")
parity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parity)
# As in tests/models/test_unet.py: diffusers runs the same kernels here (gap 0), not everywhere.
REL = 1e-5
OPTIONS = SamplingOptions(steps=4, guidance=2.5, sampler="dpmpp_2m_sde")


def like_the_default(folder: Path) -> Path:
    """A tiny latent model built as the default is: coordinate channels, per-channel latents,
    zero-terminal-SNR v-prediction, dpmpp_2m_sde; its UNet's weights moved off their init."""
    base = tiny_model()
    config = replace(
        base.config, unet=replace(base.config.unet, coord_channels=True), defaults=OPTIONS,
        diffusion=DiffusionConfig(zero_terminal_snr=True, prediction_type="v_prediction"),
    )  # fmt: skip
    torch.manual_seed(1)
    unet = UNet(config.unet).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(Model(config, unet, base.text_encoder, base.vae), folder, card="# tiny\n")
    return folder


def export(*args: str):
    return CliRunner().invoke(app, ["export", *args])


def test_the_folders_load_in_diffusers_and_compute_what_atelier_does(tmp_path):
    folder = like_the_default(tmp_path / "tiny")
    result = export(str(folder), "-o", str(tmp_path / "out"), "--format", "diffusers")
    assert result.exit_code == 0, result.output
    unet, vae, scheduler = parity.load_diffusers(tmp_path / "out")
    model = load_model(folder)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=generator)
    t = torch.tensor([999.0, 261.0])
    text = model.text_encoder.encode(["a red circle", "two blue squares above a green circle"])
    z = torch.randn(2, 4, 8, 8, generator=generator)
    with torch.no_grad():
        theirs = unet(torch.cat([x, coordinate_grid(x)], 1), t, encoder_hidden_states=text.states,
                      encoder_attention_mask=text.mask).sample  # fmt: skip
        assert_close_to(theirs, model.unet(x, t, text), rel=REL)
        assert_close_to(vae.decode(z).sample, model.vae.decode(z), rel=REL)
    c = model.config
    assert (vae.config.scaling_factor, vae.config.latents_mean, vae.config.latents_std) == (
        c.latent_scale, list(c.latent_mean), list(c.latent_std),
    )  # fmt: skip
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scheduler.config.algorithm_type == "sde-dpmsolver++"
    scheduler.set_timesteps(OPTIONS.steps)
    plan = make_plan(c.diffusion.alphas_cumprod(), OPTIONS.steps, spacing=OPTIONS.spacing)
    assert scheduler.timesteps.tolist() == plan.timesteps.tolist()


def test_the_diffusers_loop_draws_the_same_pixels(tmp_path):
    folder = like_the_default(tmp_path / "tiny")
    assert export(str(folder), "-o", str(tmp_path / "out"), "--format", "diffusers").exit_code == 0
    unet, vae, scheduler = parity.load_diffusers(tmp_path / "out")
    model = load_model(folder)
    prompts, seeds = ["a red circle", "three yellow squares"], [3, 4]
    ours = parity.to_pixels(model.pipeline().decode(
        model.pipeline().sample(prompts, seeds=seeds, options=OPTIONS)))  # fmt: skip
    theirs = parity.to_pixels(parity.diffusers_images(
        unet, vae, scheduler, model.text_encoder.encode(prompts),
        model.text_encoder.encode([""] * 2), seeds, steps=OPTIONS.steps,
        guidance=OPTIONS.guidance, latent_shape=model.config.latent_shape,
    ))  # fmt: skip
    # Identical here; elsewhere diffusers' kernels may round a last bit otherwise, and a level
    # of 255 is the most that may change.
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_what_has_no_diffusers_form_is_refused(tmp_path):
    folder = like_the_default(tmp_path / "tiny")
    out = str(tmp_path / "out")
    result = export(str(folder), "-o", out, "--format", "onnx")
    assert result.exit_code == 2 and "valid: atelier, diffusers" in result.output
    result = export(str(folder), "-o", out, "--format", "diffusers", "--sampler", "heun")
    assert result.exit_code == 2 and "has no zero-terminal-SNR schedule" in result.output
    result = export("shapes-vae", "-o", out, "--format", "diffusers")
    assert result.exit_code == 2 and "not a diffusion model" in result.output
    assert not (tmp_path / "out").exists()
