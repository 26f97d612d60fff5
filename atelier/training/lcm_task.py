"""Latent consistency distillation (Luo et al. 2023, "Latent Consistency Models", Algorithm 1) as
a training task: a student learns the consistency function of its guided teacher's ODE.

Notation as in the paper, in the VE view the samplers use (``diffusion/schedules.py``): latents
z_0, the skipping-step grid t_{n+k} = k - 1, 2k - 1, ..., T - 1 (``skipping_timesteps``) with
t_n = max(t_{n+k} - k, 0), guidance scale s (LCM's w = s - 1), f_theta the student's consistency
function (``diffusion/consistency.py``) with s as its input, f_theta- the EMA target network's.
Per image of a batch (z_0, caption):

    n ~ U{0, N - 1},  s ~ U[s_min, s_max],  x_{n+k} = z_0 + sigma_{n+k} eps,
    x_n = DDIM(x_{n+k}; D_s)                  one ODE step of the teacher guided at s
    L = d(f_theta(x_{n+k}, t_{n+k}, s), f_theta-(x_n, t_n, s)),   d pseudo-Huber,

where D_s is the frozen teacher with classifier-free guidance at scale s. After every optimizer
step the target follows theta- <- mu theta- + (1 - mu) theta. The student starts as the teacher
(its w-embedding zero), the target as the student. At mu = 0 the target is the student itself
under stop-gradient, so no copy is kept.

LCM-LoRA (Luo et al. 2023, "LCM-LoRA: A Universal Stable-Diffusion Acceleration Module") is the
same distillation with theta the adapters of a LoRA (``models/lora.py``) on the frozen teacher:
the student has no w-embedding, so f_theta(x, t) does not read s, and diffusers' script keeps no
target network (mu = 0).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atelier.data.recaption import choose_captions
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.consistency import consistency_output
from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.guidance import classifier_free_guidance, embedded_guidance
from atelier.diffusion.losses import pseudo_huber
from atelier.diffusion.options import SamplingOptions
from atelier.diffusion.parameterization import broadcast
from atelier.diffusion.samplers.ddim import ddim_step
from atelier.diffusion.schedules import (
    LCM_SOLVER_STEPS,
    sigmas_from_alphas_cumprod,
    skipping_timesteps,
)
from atelier.eval.grid import save_grid
from atelier.models.latent_space import LatentSpace
from atelier.models.lora import LoRAConfig
from atelier.pipelines.text2image import Text2Image
from atelier.text.encoder import TextEncoder
from atelier.training.ldm import judged_samples
from atelier.training.task import Logs

# Sample grids judge the student at these step counts of LCM's sampler (the grid shows the last).
SAMPLE_STEPS = (1, 2, 4)


@dataclass(frozen=True)
class ConsistencyDistillation:
    """Settings of latent consistency distillation.

    The teacher is guided at a scale s drawn uniformly from [``guidance_min``,
    ``guidance_max``] (classifier-free guidance's s, as ``SamplingOptions.guidance``; LCM's w is
    s - 1), which the student takes as an input. ``target_decay`` is the paper's mu, the EMA
    rate of the target network (0: the student itself); ``huber_c`` the pseudo-Huber distance's
    c. ``lora`` makes the student LCM-LoRA's: the teacher's UNet, frozen, plus these adapters,
    with no w-embedding (it learns the teacher at the scales drawn, not as an input).
    """

    guidance_min: float = 2.0
    guidance_max: float = 5.0
    target_decay: float = 0.95
    huber_c: float = 0.001
    lora: LoRAConfig | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.guidance_min) and math.isfinite(self.guidance_max)
                and 0 <= self.guidance_min <= self.guidance_max):  # fmt: skip
            raise ValueError(
                f"distillation.guidance_min and guidance_max must be finite with 0 <= min <= max, "
                f"got {self.guidance_min} and {self.guidance_max}"
            )
        if not 0 <= self.target_decay < 1:
            raise ValueError(f"distillation.target_decay must be in [0, 1), got "
                             f"{self.target_decay}")  # fmt: skip
        if not (math.isfinite(self.huber_c) and self.huber_c > 0):
            raise ValueError(f"distillation.huber_c must be > 0, got {self.huber_c}")
        if self.lora is not None and self.target_decay != 0:
            # An EMA of a student whose base is frozen would be the adapters' EMA; LCM-LoRA
            # keeps none (diffusers' script targets the student itself).
            raise ValueError(f"an LCM-LoRA student keeps no target network: distillation."
                             f"target_decay must be 0, got {self.target_decay}")  # fmt: skip


def _with_scale(unet: nn.Module):
    def run(x: torch.Tensor, t: torch.Tensor, cond: Any, scale: torch.Tensor) -> torch.Tensor:
        return unet(x, t, cond, guidance=scale)

    return run


class ConsistencyDistillationTask:
    """Distil ``teacher`` (a frozen UNet) into ``student`` (its architecture, with
    ``guidance_embedding`` to take the scale as an input, or without for LCM-LoRA), on clean
    latents in the teacher's space under ``diffusion``. ``trained`` names what the optimizer
    moves (default: the whole student as "unet"; for LCM-LoRA the adapters attached to it)."""

    def __init__(
        self,
        *,
        student: nn.Module,
        teacher: nn.Module,
        trained: dict[str, nn.Module] | None = None,
        text_encoder: TextEncoder,
        diffusion: DiffusionConfig,
        distillation: ConsistencyDistillation = ConsistencyDistillation(),
        latent_shape: tuple[int, int, int],
        vae: nn.Module | None = None,
        latent_space: LatentSpace = LatentSpace(),
        sample_prompts: Sequence[str] = (),
        sample_options: SamplingOptions = SamplingOptions(sampler="lcm", spacing="lcm"),
    ) -> None:
        if student is teacher:
            raise ValueError("the student must be a network apart from its frozen teacher")
        self.student = student
        self.trained = trained if trained is not None else {"unet": student}
        self.teacher = teacher.eval().requires_grad_(False)
        # mu = 0 makes the target the student after every step: the student itself, no copy.
        self.target: nn.Module | None = None
        if distillation.target_decay > 0:
            self.target = copy.deepcopy(student).eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval()
        self.vae = vae.eval().requires_grad_(False) if vae is not None else None
        self.diffusion = diffusion
        self.distillation = distillation
        self.latent_shape = latent_shape
        self.latent_space = latent_space
        self.sample_prompts = list(sample_prompts)
        self.sample_options = sample_options
        n_train = diffusion.n_train
        # Table sigmas, with a zero-terminal-SNR schedule's stand-in for its infinite sigma_T:
        # what a sampler starts from, so the student learns the level it is asked at.
        self.sigmas = sigmas_from_alphas_cumprod(diffusion.alphas_cumprod())  # (T,) float64
        solver_steps = min(LCM_SOLVER_STEPS, n_train)
        self.grid = skipping_timesteps(n_train, solver_steps).long()  # (N,) t_{n+k}
        self.k = n_train // solver_steps
        self.target_step = 0  # the optimizer steps the target has followed

    def modules(self) -> dict[str, nn.Module]:
        return self.trained

    @property
    def reads_scale(self) -> bool:
        """Whether the student takes the guidance scale as an input (LCM's w-embedding)."""
        return bool(getattr(getattr(self.student, "config", None), "guidance_embedding", False))

    def loss(
        self, batch: tuple[torch.Tensor, Sequence[str]], step: int
    ) -> tuple[torch.Tensor, Logs]:
        z0, captions = batch
        self.follow(step)
        b, device = z0.shape[0], z0.device
        with torch.no_grad():
            cond = self.text_encoder.encode(choose_captions(captions))
            uncond = self.text_encoder.encode([""] * b)
        t_start = self.grid[torch.randint(0, len(self.grid), (b,))]  # (B,) t_{n+k}
        t_end = (t_start - self.k).clamp(min=0)  # (B,) t_n
        sigma_start, sigma_end = self.sigmas[t_start], self.sigmas[t_end]  # (B,) float64
        d = self.distillation
        scale = d.guidance_min + (d.guidance_max - d.guidance_min) * torch.rand(b)  # (B,)
        scale, t_start, t_end = scale.to(device), t_start.to(device), t_end.to(device)
        x = z0 + broadcast(sigma_start, z0) * torch.randn_like(z0)  # x_{n+k}
        online = self.consistency(self.student, cond, scale, x, sigma_start, t_start)
        with torch.no_grad():
            guided = classifier_free_guidance(self.teacher, cond, uncond, scale)
            teacher = VPDenoiser(guided, self.diffusion.prediction_type)
            x_prev = ddim_step(x, teacher(x, sigma_start, t_start), sigma_start, sigma_end)  # x_n
            target = self.student if self.target is None else self.target
            aim = self.consistency(target, cond, scale, x_prev, sigma_end, t_end)
        per_image = pseudo_huber(online, aim, d.huber_c).flatten(1).mean(1)  # (B,)
        return per_image.mean(), {"t": t_start.cpu(), "loss": per_image.detach().cpu()}

    def consistency(
        self,
        unet: nn.Module,
        cond: Any,
        scale: torch.Tensor,
        x: torch.Tensor,
        sigma: torch.Tensor,
        t: torch.Tensor,
    ) -> torch.Tensor:
        """f(x, t, s) at VE latents x of level sigma: of a network taking the guidance scale,
        or f(x, t) of one that does not (LCM-LoRA's)."""
        if self.reads_scale:
            model = embedded_guidance(_with_scale(unet), cond, scale)
        else:
            model = partial(unet, context=cond)
        denoised = VPDenoiser(model, self.diffusion.prediction_type)(x, sigma, t)
        return consistency_output(x, sigma, t, denoised)

    @torch.no_grad()
    def follow(self, step: int) -> None:
        """Move the target toward the student once per optimizer step: at ``step`` the student
        holds the weights of ``step`` optimizer steps (micro-batches of a step move it once)."""
        if step <= self.target_step:
            return
        self.target_step = step
        if self.target is None:
            return
        live = dict(self.student.named_parameters())
        for name, param in self.target.named_parameters():
            param.lerp_(live[name].detach().to(param.dtype), 1 - self.distillation.target_decay)

    def extra_state(self) -> dict[str, torch.Tensor]:
        """The target network and the step it has followed, so a resumed run continues it."""
        state = {"target_step": torch.tensor(self.target_step)}
        if self.target is not None:
            state |= {
                f"target.{k}": v.detach().clone() for k, v in self.target.state_dict().items()
            }
        return state

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.target is not None:
            self.target.load_state_dict(
                {k.removeprefix("target."): v for k, v in state.items() if k.startswith("target.")}
            )
        self.target_step = int(state["target_step"])

    def pipeline(self) -> Text2Image:
        return Text2Image(
            network=self.student, text_encoder=self.text_encoder, diffusion=self.diffusion,
            latent_shape=self.latent_shape, autoencoder=self.vae, latent_space=self.latent_space,
        )  # fmt: skip

    def sample(self, step: int, out_dir: Path) -> None:
        """The judge's pass rate on the sample prompts at 1, 2 and 4 steps of LCM's sampler, and
        a grid of the last."""
        if not self.sample_prompts:
            return
        record: dict[str, Any] = {"step": step, "n": len(self.sample_prompts)}
        pipe = self.pipeline()
        for steps in SAMPLE_STEPS:
            options = replace(self.sample_options, steps=steps)
            images, passed = judged_samples(pipe, self.sample_prompts, options)
            record[f"judge_pass_{steps}"] = passed
        save_grid(images, out_dir / f"samples-{step:07d}.png", captions=self.sample_prompts,
                  title=f"step {step}, {SAMPLE_STEPS[-1]} sampler steps")  # fmt: skip
        with open(out_dir / "samples.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
