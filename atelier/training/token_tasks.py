"""Training token transformers as tasks: DALL-E's next-token objective and MaskGIT's masked one.

Notation as in :mod:`atelier.models.token_transformer`: a batch of (c, caption) with c (B, g, g)
the image tokenizer's codes, flattened row-major to (B, n). Captions are dropped to "" with
probability ``p_uncond`` (so the same network learns the unconditional model that
classifier-free guidance needs; DALL-E mini's "super-conditioning") and laid out as BPE ids, or
encoded by a frozen text encoder for a cross-attention transformer (the dropped caption's states
are the encoder's null states, as the diffusion models'), before the network reads them.

- :class:`AutoregressiveTask`: cross-entropy of every c_i given the text and c_<i (teacher
  forcing; the text tokens themselves are not predicted).
- :class:`MaskedTokenTask`: per image r ~ U(0, 1), ceil(gamma(r) n) random positions (at least
  one) replaced by the mask token, with gamma the decoding's cosine schedule (MaskGIT, Chang et
  al., 2022, section 3.2); cross-entropy on the masked positions only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from atelier.data.recaption import choose_captions
from atelier.eval.grid import save_grid
from atelier.models.token_transformer import (
    AutoregressiveTransformer,
    MaskedTokenTransformer,
    Text,
    TokenTransformer,
)
from atelier.models.tokenizer import ImageTokenizer
from atelier.pipelines.token2image import AutoregressivePipeline, MaskedPipeline, TokenPipeline
from atelier.shapes.judge import judge
from atelier.shapes.parse import parse_prompt
from atelier.text.encoder import TextEncoder
from atelier.text.tokenizer import BPETokenizer
from atelier.tokens.masked import cosine_schedule
from atelier.tokens.options import AutoregressiveOptions, MaskedOptions
from atelier.training.task import Logs

Batch = tuple[torch.Tensor, Sequence[str]]  # codes (B, g, g) and captions


@dataclass(frozen=True)
class TokenObjective:
    """Settings of the token objectives: the caption dropout rate."""

    p_uncond: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_uncond < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")


class TokenTask:
    """What both token tasks share: the network, caption dropout, and sample grids. A prefix
    network reads ``text_tokenizer``'s ids, a cross-attention one the frozen ``text_encoder``'s
    states."""

    def __init__(
        self,
        network: TokenTransformer,
        text_tokenizer: BPETokenizer | None = None,
        *,
        text_encoder: TextEncoder | None = None,
        objective: TokenObjective = TokenObjective(),
        image_tokenizer: ImageTokenizer | None = None,
        sample_prompts: Sequence[str] = (),
        sample_options: AutoregressiveOptions | MaskedOptions | None = None,
        sample_scores: Callable[..., dict[str, float]] | None = None,
    ) -> None:
        """``sample_scores(pipeline, images, prompts)`` measures each sample grid (default: the
        shapes judge's pass rate; ``training/real_samples.py`` has the real sets')."""
        cross = network.config.cross_attention
        if (text_encoder is not None, text_tokenizer is not None) != (cross, not cross):
            raise ValueError("a prefix token transformer trains on text_tokenizer's ids, a "
                             "cross-attention one on text_encoder's states: pass the one it "
                             "reads")  # fmt: skip
        self.network, self.text_tokenizer, self.objective = network, text_tokenizer, objective
        self.text_encoder = text_encoder
        self.image_tokenizer = image_tokenizer
        self.sample_prompts, self.sample_options = list(sample_prompts), sample_options
        self.sample_scores = sample_scores if sample_scores is not None else _shapes_judge

    def modules(self) -> dict[str, nn.Module]:
        return {"transformer": self.network}

    def inputs(self, batch: Batch) -> tuple[Text, torch.Tensor]:
        """The text (ids (B, T) or states) with captions dropped at ``p_uncond``, and codes
        (B, n)."""
        codes, captions = batch
        captions = choose_captions(captions)
        drop = torch.rand(len(captions)) < self.objective.p_uncond
        prompts = ["" if d else c for c, d in zip(captions, drop.tolist())]
        if self.text_encoder is not None:
            return self.text_encoder.encode(prompts).to(codes.device), codes.flatten(1)
        window = self.network.config.text_length
        text = self.text_tokenizer.encode(prompts, max_length=window).ids.to(codes.device)
        return text, codes.flatten(1)

    def pipeline(self) -> TokenPipeline:
        raise NotImplementedError

    def sample(self, step: int, out_dir: Path) -> None:
        """A grid of the sample prompts at fixed seeds, and the judge's pass rate on it."""
        if not self.sample_prompts or self.image_tokenizer is None:
            return
        # The loop sets eval mode, swaps EMA weights in and restores both afterwards.
        prompts, pipe = self.sample_prompts, self.pipeline()
        images = pipe(prompts, seeds=range(len(prompts)), options=self.sample_options)
        scores = self.sample_scores(pipe, images, prompts)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_grid(images, out_dir / f"samples-{step:07d}.png", captions=prompts,
                  title=f"step {step}")  # fmt: skip
        with open(out_dir / "samples.jsonl", "a") as f:
            record = {"step": step, **scores, "n": len(images)}
            f.write(json.dumps(record) + "\n")


def _shapes_judge(pipe: TokenPipeline, images: Sequence[Image.Image],
                  prompts: Sequence[str]) -> dict[str, float]:  # fmt: skip
    """The shapes judge's pass rate on a sample grid."""
    passed = [judge(np.asarray(im), parse_prompt(p)).passed for im, p in zip(images, prompts)]
    return {"judge_pass": float(np.mean(passed))}


class AutoregressiveTask(TokenTask):
    """Train an :class:`AutoregressiveTransformer` to predict each token from those before."""

    network: AutoregressiveTransformer

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, Logs]:
        text, codes = self.inputs(batch)
        logits = self.network(text, codes[:, :-1])  # (B, n, K)
        loss = F.cross_entropy(logits.float().flatten(0, 1), codes.flatten())
        return loss, {"bits_per_token": loss.item() / math.log(2)}

    def pipeline(self) -> AutoregressivePipeline:
        return AutoregressivePipeline(network=self.network, text_tokenizer=self.text_tokenizer,
                                      text_encoder=self.text_encoder,
                                      image_tokenizer=self.image_tokenizer)  # fmt: skip


def random_masks(batch: int, n: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, n) bool: for each row, ceil(gamma(r) n) random positions (at least one), r ~ U(0, 1)
    and gamma the cosine schedule; drawn from the global generator."""
    r = torch.rand(batch)
    counts = torch.tensor([max(1, math.ceil(cosine_schedule(float(x)) * n)) for x in r])
    rank = torch.rand(batch, n).argsort(dim=1).argsort(dim=1)  # a random permutation's ranks
    return (rank < counts[:, None]).to(device)


class MaskedTokenTask(TokenTask):
    """Train a :class:`MaskedTokenTransformer` to fill masked tokens from the rest and the text."""

    network: MaskedTokenTransformer

    def loss(self, batch: Batch, step: int) -> tuple[torch.Tensor, Logs]:
        text, codes = self.inputs(batch)
        masked = random_masks(*codes.shape, device=codes.device)  # (B, n)
        logits = self.network(text, codes.masked_fill(masked, self.network.mask_id))  # (B, n, K)
        loss = F.cross_entropy(logits[masked].float(), codes[masked])
        return loss, {"masked_fraction": masked.float().mean().item()}

    def pipeline(self) -> MaskedPipeline:
        return MaskedPipeline(network=self.network, text_tokenizer=self.text_tokenizer,
                              text_encoder=self.text_encoder,
                              image_tokenizer=self.image_tokenizer)  # fmt: skip
