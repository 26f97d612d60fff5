"""Teaching a trained diffusion model a concept from a few captioned images, three ways, as tasks
of the one training loop. Each names the concept by a rare token in its captions.

- **LoRA** (Hu et al., 2021): low-rank adapters on the UNet's attention (and a trainable text
  encoder's), everything else frozen (``models/lora.py``).
- **DreamBooth** (Ruiz et al., 2023): the whole UNet fine-tuned on the concept's images, plus
  the prior-preservation loss: lambda times the same denoising loss on class images the base
  model drew from the captions with the token replaced by a class word, so the class keeps
  looking as it did.
- **Textual inversion** (Gal et al., 2022): one new word embedding v, everything else frozen;
  the token enters the text encoder's vocabulary (``text/embeddings.py``).

All three minimise the base model's own objective (its prediction type, uniform weighting, no
caption dropout) on latents from the base's autoencoder. Samples every ``sample_every`` steps
are a grid of the prompts given (the concept suite's, by default) at fixed seeds and, where the
prompts are the concept suite's, the judge's pass rate on them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from atelier.eval.grid import save_grid
from atelier.shapes.concept import ConceptPrompt, judge_concept
from atelier.training.ldm import LatentDiffusionTask
from atelier.training.task import Logs


class PersonalTask(LatentDiffusionTask):
    """The denoising objective on the concept's latents; ``trained`` are the networks learnt
    (the rest stays frozen). ``prior`` (class latents (N, C, h, w), their captions) and
    ``prior_weight`` lambda add DreamBooth's prior-preservation term, one class batch of the
    instance batch's size per step."""

    def __init__(
        self,
        *,
        trained: dict[str, nn.Module],
        concept_prompts: Sequence[ConceptPrompt] = (),
        prior: tuple[torch.Tensor, list[str]] | None = None,
        prior_weight: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.trained = trained
        self.concept_prompts = list(concept_prompts)
        self.prior = prior
        self.prior_weight = prior_weight

    def modules(self) -> dict[str, nn.Module]:
        return self.trained

    def loss(
        self, batch: tuple[torch.Tensor, Sequence[str]], step: int
    ) -> tuple[torch.Tensor, Logs]:
        z0, captions = batch
        loss, logs = self.denoising_loss(z0, captions)
        logs = {"instance": float(loss.detach())}
        if self.prior is not None and self.prior_weight > 0:
            latents, texts = self.prior
            pick = torch.randint(0, len(latents), (len(z0),)).tolist()
            prior_loss, _ = self.denoising_loss(latents[pick].to(z0), [texts[i] for i in pick])
            loss = loss + self.prior_weight * prior_loss
            logs["prior"] = float(prior_loss.detach())
        return loss, logs

    def sample(self, step: int, out_dir: Path) -> None:
        """A grid of the sample prompts at fixed seeds; the judge's pass rate on the concept
        suite's."""
        prompts = [p.prompt for p in self.concept_prompts] or self.sample_prompts
        if not prompts:
            return
        images = self.pipeline()(prompts, seeds=range(len(prompts)), options=self.sample_options)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_grid(images, out_dir / f"samples-{step:07d}.png", captions=prompts,
                  title=f"step {step}")  # fmt: skip
        record: dict = {"step": step, "n": len(images)}
        if self.concept_prompts:
            passed = [judge_concept(np.asarray(im), p).passed
                      for im, p in zip(images, self.concept_prompts)]  # fmt: skip
            record["concept_pass"] = float(np.mean(passed))
        with open(out_dir / "samples.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
