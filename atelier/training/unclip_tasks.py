"""Training unCLIP's two networks as tasks (Ramesh et al. 2022, sections 2.1 and 2.2).

Both train on CLIP's view of the data (``data/clip_embeddings.py``): a batch is ((x_0, z_i),
captions), x_0 the image (B, 3, S, S) in [-1, 1] and z_i its CLIP image embedding (B, E), and
each caption's CLIP text states and text embedding z_t are looked up, computed once before the
run (:class:`~atelier.data.clip_embeddings.CaptionEncodings`).

- :class:`PriorTask`: captions are dropped to "" with probability ``p_uncond`` (DALL-E 2 drops
  the text 10% of the time, for classifier-free guidance); z_i, normalised per dimension, is
  noised to x_t at t ~ U{0, T-1}, and the prior's estimate of the clean embedding is regressed on
  it (its x_0 objective: ``diffusion_loss`` with prediction type ``"sample"``).
- :class:`DecoderTask`: z_i is replaced by the learned null embedding with probability
  ``p_drop_embedding`` (10% in DALL-E 2) and the caption dropped with ``p_drop_caption`` (50%),
  independently; the UNet denoises x_0 under its diffusion's prediction type.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from atelier.data.base import tensor_to_array
from atelier.data.clip_embeddings import CaptionEncodings
from atelier.data.recaption import choose_captions
from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.losses import diffusion_loss
from atelier.diffusion.parameterization import q_sample
from atelier.models.clip import CLIP
from atelier.models.latent_space import LatentSpace
from atelier.models.prior import PriorTransformer
from atelier.models.unet import ImageCondition, UNet
from atelier.pipelines.unclip import UnCLIPDecoder, UnCLIPPrior
from atelier.shapes.judge import judge
from atelier.shapes.parse import parse_prompt
from atelier.training.task import Logs
from atelier.unclip.options import UnCLIPOptions

Batch = tuple[tuple[torch.Tensor, torch.Tensor], Sequence[str]]  # (x_0, z_i), captions


@dataclass(frozen=True)
class UnCLIPObjective:
    """The dropout rates that teach both networks their unconditional models: the prior's
    caption (``p_uncond``), the decoder's image embedding and caption."""

    p_uncond: float = 0.1
    p_drop_embedding: float = 0.1
    p_drop_caption: float = 0.5

    def __post_init__(self) -> None:
        for name in ("p_uncond", "p_drop_embedding", "p_drop_caption"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def _dropped(captions: Sequence[str], p: float) -> list[str]:
    """One caption per sample (``choose_captions``), each replaced by "" with probability p."""
    captions = choose_captions(captions)
    drop = torch.rand(len(captions)) < p
    return ["" if d else c for c, d in zip(captions, drop.tolist())]


@dataclass(frozen=True)
class SamplePairs:
    """Fixed pairs a task samples from every ``sample_every`` steps: images (N, 3, S, S), their
    CLIP embeddings (N, E) and captions."""

    images: torch.Tensor
    embeddings: torch.Tensor
    captions: list[str]


class PriorTask:
    """Train ``prior`` to estimate z_i's normalised form x_0 from x_t and the caption."""

    def __init__(
        self,
        *,
        prior: PriorTransformer,
        diffusion: DiffusionConfig,
        space: LatentSpace,
        captions: CaptionEncodings,
        objective: UnCLIPObjective = UnCLIPObjective(),
        clip: CLIP | None = None,
        samples: SamplePairs | None = None,
        sample_options: UnCLIPOptions = UnCLIPOptions(),
    ) -> None:
        if diffusion.prediction_type != "sample":
            raise ValueError("unCLIP's prior predicts x_0: its diffusion's prediction type must "
                             f"be 'sample', got {diffusion.prediction_type!r}")  # fmt: skip
        self.prior, self.diffusion, self.space = prior, diffusion, space
        self.captions, self.objective = captions, objective
        self.clip, self.samples, self.sample_options = clip, samples, sample_options
        self.abar = diffusion.alphas_cumprod()

    def modules(self) -> dict[str, nn.Module]:
        return {"prior": self.prior}

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, Logs]:
        (_, z_i), captions = batch
        caption = self.captions(_dropped(captions, self.objective.p_uncond)).to(z_i.device)
        x0 = self.space.to_diffusion(z_i.float())  # (B, E)
        t = torch.randint(0, self.diffusion.n_train, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = q_sample(x0, self.abar.to(x0.device)[t], noise)
        out = self.prior(x_t, t.to(x0.dtype), caption)  # (B, E)
        per_sample = diffusion_loss(out.float(), x0, noise, t, self.abar, reduction="none",
                                    prediction_type="sample")  # fmt: skip
        # The cosine of the estimate with z_i in CLIP space: what the decoder will be given.
        cosine = F.cosine_similarity(self.space.from_diffusion(out.detach().float()), z_i, dim=-1)
        return per_sample.mean(), {"cosine": cosine.mean().item(), "t": t.detach().cpu(),
                                   "loss": per_sample.detach().cpu()}  # fmt: skip

    def sample(self, step: int, out_dir: Path) -> None:
        """How close the prior's samples for the sample captions come to their images' z_i and
        to their z_t (cosines in CLIP space, with and without the two-sample pick)."""
        if self.samples is None or self.clip is None:
            return
        pairs = self.samples
        # The loop sets eval mode, swaps EMA weights in and restores both afterwards.
        prior = UnCLIPPrior(clip=self.clip, prior=self.prior, diffusion=self.diffusion,
                            space=self.space)  # fmt: skip
        z_t = self.captions(pairs.captions)
        record: dict[str, float | int] = {"step": step}
        for pick in (False, True):
            options = replace(self.sample_options, two_sample_pick=pick)
            generators = [torch.Generator().manual_seed(k) for k in range(len(pairs.captions))]
            z = prior(pairs.captions, generators=generators, options=options).cpu()
            name = "pick" if pick else "one"
            record[f"cos_image_{name}"] = round(float((z * pairs.embeddings).sum(-1).mean()), 4)
            record[f"cos_text_{name}"] = round(float((z * z_t.pooled).sum(-1).mean()), 4)
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "samples.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")


class DecoderTask:
    """Train ``decoder`` to draw x_0 from its CLIP embedding z_i and (optionally) its caption."""

    def __init__(
        self,
        *,
        decoder: UNet,
        diffusion: DiffusionConfig,
        captions: CaptionEncodings,
        objective: UnCLIPObjective = UnCLIPObjective(),
        clip: CLIP | None = None,
        samples: SamplePairs | None = None,
        sample_options: UnCLIPOptions = UnCLIPOptions(),
    ) -> None:
        if decoder.config.image_embed_dim is None:
            raise ValueError("an unCLIP decoder needs unet.image_embed_dim, the CLIP's width")
        self.decoder, self.diffusion, self.captions = decoder, diffusion, captions
        self.objective = objective
        self.clip, self.samples, self.sample_options = clip, samples, sample_options
        self.abar = diffusion.alphas_cumprod()

    def modules(self) -> dict[str, nn.Module]:
        return {"decoder": self.decoder}

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, Logs]:
        (x0, z_i), captions = batch
        b = len(x0)
        text = self.captions(_dropped(captions, self.objective.p_drop_caption)).to(x0.device)
        dropped = (torch.rand(b) < self.objective.p_drop_embedding).to(x0.device)
        t = torch.randint(0, self.diffusion.n_train, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = q_sample(x0, self.abar.to(x0.device)[t], noise)
        out = self.decoder(x_t, t.to(x0.dtype), text, image=ImageCondition(z_i, dropped))
        per_sample = diffusion_loss(out.float(), x0.float(), noise.float(), t, self.abar,
                                    prediction_type=self.diffusion.prediction_type,
                                    reduction="none")  # fmt: skip
        return per_sample.mean(), {"t": t.detach().cpu(), "loss": per_sample.detach().cpu()}

    def sample(self, step: int, out_dir: Path) -> None:
        """The sample pairs' own embeddings decoded with and without their captions, beside the
        images, as a grid; and the judge's pass rate of each against the caption."""
        if self.samples is None or self.clip is None:
            return
        pairs = self.samples
        # The loop sets eval mode, swaps EMA weights in and restores both afterwards.
        decode = UnCLIPDecoder(clip=self.clip, decoder=self.decoder, diffusion=self.diffusion,
                               resolution=pairs.images.shape[-1])  # fmt: skip
        n = len(pairs.captions)
        rows, record = [pairs.images], {"step": step, "n": n}
        for name, captions in (("caption", pairs.captions), ("embedding_only", [""] * n)):
            generators = [torch.Generator().manual_seed(k) for k in range(n)]
            images = decode(pairs.embeddings, captions, generators=generators,
                            options=self.sample_options).cpu()  # fmt: skip
            passed = [judge(tensor_to_array(im), parse_prompt(c)).passed
                      for im, c in zip(images, pairs.captions)]  # fmt: skip
            record[f"judge_pass_{name}"] = float(np.mean(passed))
            rows.append(images)
        out_dir.mkdir(parents=True, exist_ok=True)
        grid = np.concatenate([np.concatenate([tensor_to_array(im) for im in r], axis=1)
                               for r in rows], axis=0)  # fmt: skip
        Image.fromarray(grid).save(out_dir / f"samples-{step:07d}.png")
        with open(out_dir / "samples.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
