"""Training a text-conditional GAN (DF-GAN; Tao et al., 2022) as a task for the generic loop.

Notation as in :mod:`atelier.gan.losses`; T is the augmentation (``gan/augment.py``, identity
without one). Per batch of (x, caption), with hard negatives when the data has them:

1. s = the captions' sentence vectors (and word states, for attention), s_hard the negatives',
   rescaled once (``sentence_features``) into what D's head reads;
2. x_hat = G(z, s), z ~ N(0, I) from the global generator (which checkpoints restore);
3. D's image features of T(x), computed once, judged against s (real), against s rolled by one
   in the batch (another image's caption, DF-GAN's mismatched pair; a row whose neighbour has
   the very same caption is left out) and against s_hard (the same scene with one fact
   changed); D(T(x_hat), s) with x_hat detached (fake);
4. L_D = hinge_real + 1/2 (hinge_fake(fake) + hinge_fake(mismatched and hard)) + the penalty
   (MA-GP at the real pairs, or R1 at the real images);
5. L_G = -D(T(x_hat), s) with D's parameters detached (``functional_call``), so L_G moves G
   only, as L_D moves D only.

The loop takes one AdamW step on L_D + L_G, whose gradients reach disjoint parameters: the two
players descend simultaneously, where DF-GAN alternates (D's step, then G's against the new D).
One backward pass per step is what lets a GAN use the one loop (checkpoints, EMA of G, resume,
NaN guard) like every other task; G sees a D one step older. The discriminator's higher learning
rate (TTUR) comes through :meth:`GANTask.lr_scales`.

A trainable text encoder learns from L_D alone: telling a matching caption from a mismatched
one is the discriminator's job, while G gets the sentence vectors detached (were G's loss to
reach the encoder, it could move the captions toward whatever D mistakes for real).

Logs: ``d_loss``, ``g_loss``, ``penalty``, the mean logits ``d_real``, ``d_fake``,
``d_mismatch`` (and ``d_hard``, ``hard_won``: the share of hard negatives D scores at or above
the true caption), and ``diversity``, the mean pairwise distance of the generated images over
that of the real ones: near 0 is a collapse. Every ``sample_every`` steps :meth:`GANTask.sample`
writes a grid of fixed prompts at fixed noise with the judge's pass rate and, with a
:class:`CollapseProbe`, improved precision and recall of generated against real features
(Kynkaenniemi et al., 2019): recall falling while precision holds is a collapse seen, not
guessed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from atelier.data.base import array_to_tensor
from atelier.data.recaption import choose_captions
from atelier.eval.fid import FeatureExtractor, extract, precision_recall
from atelier.eval.grid import save_grid
from atelier.gan.augment import POLICIES, AugmentName, diff_augment
from atelier.gan.losses import (
    generator_loss,
    hinge_fake,
    hinge_real,
    matching_aware_gradient_penalty,
    r1_penalty,
)
from atelier.gan.options import GANOptions
from atelier.models.gan_discriminator import JointDiscriminator
from atelier.models.gan_generator import FusionGenerator, sentence_features
from atelier.pipelines.gan2image import GANPipeline
from atelier.shapes.judge import judge
from atelier.shapes.parse import parse_prompt
from atelier.text.encoder import TextEmbedding, TextEncoder
from atelier.training.task import Logs

Penalty = Literal["ma_gp", "r1", "none"]
PENALTIES: tuple[str, ...] = get_args(Penalty)


@dataclass(frozen=True)
class GANObjective:
    """Settings of the GAN objective: the gradient penalty (DF-GAN's MA-GP with weight k and
    power p, R1 with gamma, or none), DiffAugment's policy, and the discriminator's learning
    rate as a multiple of the generator's (DF-GAN: 4e-4 against 1e-4)."""

    penalty: Penalty = "ma_gp"
    ma_gp_k: float = 2.0
    ma_gp_p: float = 6.0
    r1_gamma: float = 1.0
    augment: tuple[AugmentName, ...] = ()
    discriminator_lr_scale: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(self.augment))
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        for name in ("ma_gp_k", "ma_gp_p", "r1_gamma", "discriminator_lr_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        unknown = [a for a in self.augment if a not in POLICIES]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown[0]!r}; valid: {', '.join(POLICIES)}")


@dataclass(frozen=True)
class CollapseProbe:
    """Real images (N, 3, R, R) with their captions and a feature extractor: the generator
    draws each caption at a fixed seed, and precision and recall compare the two feature sets."""

    images: torch.Tensor
    captions: list[str]
    extractor: FeatureExtractor

    def real_features(self) -> torch.Tensor:
        return extract(self.extractor, self.images)


def _detached(text: TextEmbedding) -> TextEmbedding:
    return TextEmbedding(text.states.detach(), text.mask, text.pooled.detach())


def diversity(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean pairwise L2 distance of the generated images over that of the real ones (B >= 2)."""
    spread = torch.pdist(fake.detach().float().flatten(1)).mean()
    return float(spread / torch.pdist(real.detach().float().flatten(1)).mean().clamp(min=1e-8))


class GANTask:
    """Train ``generator`` against ``discriminator`` (and a trainable text encoder with D)."""

    def __init__(
        self,
        generator: FusionGenerator,
        discriminator: JointDiscriminator,
        text_encoder: TextEncoder,
        *,
        objective: GANObjective = GANObjective(),
        sample_prompts: Sequence[str] = (),
        sample_options: GANOptions = GANOptions(),
        probe: CollapseProbe | None = None,
    ) -> None:
        if generator.config.sentence_dim != text_encoder.pooled_dim:
            raise ValueError(f"the generator reads sentence vectors of "
                             f"{generator.config.sentence_dim}, the text encoder gives "
                             f"{text_encoder.pooled_dim}")  # fmt: skip
        self.generator, self.discriminator = generator, discriminator
        self.text_encoder, self.objective = text_encoder, objective
        self.sample_prompts, self.sample_options = list(sample_prompts), sample_options
        self.probe = probe
        self._real_features = probe.real_features() if probe is not None else None

    def modules(self) -> dict[str, nn.Module]:
        trained: dict[str, nn.Module] = {"generator": self.generator,
                                         "discriminator": self.discriminator}  # fmt: skip
        if self.text_encoder.trainable:
            trained["text_encoder"] = self.text_encoder
        return trained

    def lr_scales(self) -> dict[str, float]:
        scale = self.objective.discriminator_lr_scale
        scales = {"discriminator": scale}
        if self.text_encoder.trainable:
            scales["text_encoder"] = scale  # it learns from D's loss, at D's pace
        return scales

    def _penalty(self, logits: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        objective = self.objective
        if objective.penalty == "ma_gp":
            return matching_aware_gradient_penalty(logits.float(), x, s, k=objective.ma_gp_k,
                                                   p=objective.ma_gp_p)  # fmt: skip
        if objective.penalty == "r1":
            return r1_penalty(logits.float(), x, gamma=objective.r1_gamma)
        return logits.new_zeros(())

    def loss(self, batch: tuple, step: int) -> tuple[torch.Tensor, Logs]:
        x, captions = batch[0], choose_captions(batch[1])
        hard = choose_captions(batch[2]) if len(batch) > 2 else []
        G, D, policy = self.generator, self.discriminator, self.objective.augment
        penalised = self.objective.penalty != "none"
        text = self.text_encoder.encode(captions)
        # A frozen encoder's vectors become leaves the penalty can differentiate against; a
        # trainable encoder's already require grad (and the penalty then reaches it too).
        s = sentence_features(text.pooled.float())  # (B, P), what D's head reads
        if penalised and not s.requires_grad:
            s = s.detach().requires_grad_()
        z = torch.randn(len(captions), G.config.z_dim, device=x.device)
        x_hat = G(z, _detached(text)).float()  # (B, 3, R, R)

        x_real = diff_augment(x, policy).detach().requires_grad_(penalised)
        x_fake = diff_augment(x_hat, policy)
        f_real = D.features(x_real)  # (B, 8K, 4, 4)
        d_real = D.judge(f_real, s).float()  # (B,)
        others = torch.tensor([a != b for a, b in zip(captions, captions[-1:] + captions[:-1])],
                              device=x.device)  # fmt: skip
        d_negative = D.judge(f_real, s.roll(1, 0)).float()[others]
        logs: Logs = {"d_mismatch": d_negative.mean().item()} if len(d_negative) else {}
        if hard:
            s_hard = sentence_features(self.text_encoder.encode(hard).pooled.float())
            d_hard = D.judge(f_real, s_hard).float()
            logs |= {"d_hard": d_hard.mean().item(),
                     "hard_won": (d_hard >= d_real).float().mean().item()}  # fmt: skip
            d_negative = torch.cat([d_negative, d_hard])
        d_fake = D(x_fake.detach(), s).float()
        mismatched = hinge_fake(d_negative) if len(d_negative) else d_fake.new_zeros(())
        penalty = self._penalty(d_real, x_real, s)
        d_loss = hinge_real(d_real) + (hinge_fake(d_fake) + mismatched) / 2 + penalty

        frozen = {name: p.detach() for name, p in D.named_parameters()}
        g_loss = generator_loss(functional_call(D, frozen, (x_fake, s.detach())).float())
        logs |= {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "penalty": penalty.item(),
                 "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()}  # fmt: skip
        if len(x) > 1:
            logs["diversity"] = diversity(x_hat, x)
        return d_loss + g_loss, logs

    def pipeline(self) -> GANPipeline:
        return GANPipeline(generator=self.generator, text_encoder=self.text_encoder)

    def sample(self, step: int, out_dir: Path) -> None:
        """A grid of the sample prompts at fixed seeds with the judge's pass rate, and the
        collapse probe's precision and recall, appended to ``samples.jsonl``."""
        # The loop sets eval mode, swaps the EMA weights in and restores both afterwards.
        pipe = self.pipeline()
        record: dict[str, float | int] = {"step": step}
        out_dir.mkdir(parents=True, exist_ok=True)
        prompts = self.sample_prompts
        if prompts:
            images = pipe(prompts, seeds=range(len(prompts)), options=self.sample_options)
            passed = [judge(np.asarray(im), parse_prompt(p)).passed
                      for im, p in zip(images, prompts)]  # fmt: skip
            save_grid(images, out_dir / f"samples-{step:07d}.png", captions=prompts,
                      title=f"step {step}")  # fmt: skip
            record |= {"judge_pass": float(np.mean(passed)), "n": len(passed)}
        if self.probe is not None and self._real_features is not None:
            captions = self.probe.captions
            drawn = pipe(captions, seeds=range(len(captions)), options=self.sample_options)
            fake = torch.stack([array_to_tensor(np.asarray(im)) for im in drawn])
            precision, recall = precision_recall(self._real_features,
                                                 extract(self.probe.extractor, fake))  # fmt: skip
            record |= {"precision": precision, "recall": recall, "probe_n": len(captions)}
        with open(out_dir / "samples.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
