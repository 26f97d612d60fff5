"""Quantizers: the discrete bottleneck of an image tokenizer, one interface, two algorithms.

Notation: z (B, D, h, w) the encoder's output, one D-vector z_i per grid position i; a codebook
of K entries e_k, (K, D); codes c (B, h, w) in [0, K); z_q (B, D, h, w) what the decoder reads.
Every quantizer maps z -> (z_q, c, loss, stats) with gradients reaching z (:class:`Quantized`),
and codes back to z_q (:meth:`Quantizer.embed`), which is how a token model's output is drawn.

:class:`VectorQuantizer`: VQ-VAE (van den Oord et al., 2017) with the codebook kept as
exponential moving averages (appendix A.1 there; Razavi et al., 2019):

    c_i = argmin_k ||z_i - e_k||^2,   z_q = z + sg(e_c - z)       (straight-through)
    loss = beta * mean ||z - sg(e_c)||^2                           (commitment)
    N_k <- gamma N_k + (1 - gamma) n_k,   m_k <- gamma m_k + (1 - gamma) sum_{i: c_i = k} z_i
    e_k = m_k / N~_k,   N~_k = (N_k + eps) / (N + K eps) * N,  N = sum_k N_k   (Laplace)

with n_k the batch's count of code k and gamma the decay. The codebook takes no gradient; it
follows the encoder. The codebook starts as K random z_i of the first training batch, and a code
unused for ``dead_after`` training steps restarts at a random z_i of the current batch
(Dhariwal et al., 2020), so no entry sits far from the data for long.

:class:`GumbelQuantizer`: DALL-E's discrete VAE (Ramesh et al., 2021) with the Gumbel-softmax
relaxation (Jang et al., 2017; Maddison et al., 2017):

    l = W z (B, K, h, w),   q = softmax_k(l)
    training: y = softmax_k((l + g) / tau), g ~ Gumbel(0, 1);  z_q = sum_k y_k e_k;  c = argmax y
    eval:     c = argmax_k l;  z_q = e_c
    loss = kl_weight * mean_i KL(q_i || U(K)) = kl_weight * mean_i sum_k q_ik log(K q_ik)

The temperature tau is set by the training task from its schedule (DALL-E anneals 1 -> 1/16).

Stats (:func:`usage`, :func:`perplexity`) read a histogram of codes: usage is the fraction of
the K codes that occur, perplexity exp(H) of the histogram, from 1 (one code) to K (all equally).
Codebook arithmetic runs in float32 whatever autocast the caller trains under: bf16 distances
would pick wrong nearest codes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Quantized(NamedTuple):
    """What a quantizer returns; only ``z_q`` and ``loss`` carry gradients."""

    z_q: torch.Tensor  # (B, D, h, w) float32, gradients reaching z
    codes: torch.Tensor  # (B, h, w) long
    loss: torch.Tensor  # scalar, already weighted (commitment or KL)
    stats: dict[str, float]  # usage, perplexity and the unweighted loss term, for logs


def code_counts(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """How often each of the K codes occurs in ``codes`` (any shape): (K,) long."""
    return torch.bincount(codes.flatten().long(), minlength=codebook_size)


def usage(counts: torch.Tensor) -> float:
    """The fraction of codes that occur at least once, from a histogram (K,)."""
    return float((counts > 0).double().mean())


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of the code histogram (K,): 1 for a single code, K for a uniform spread."""
    p = counts.double() / counts.sum().clamp(min=1)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


class Quantizer(nn.Module, ABC):
    """z (B, D, h, w) -> :class:`Quantized`; codes (B, h, w) -> z_q with :meth:`embed`."""

    codebook: torch.Tensor  # (K, D)

    def __init__(self, *, codebook_size: int, dim: int) -> None:
        super().__init__()
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be at least 2, got {codebook_size}")
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.codebook_size, self.dim = codebook_size, dim

    @abstractmethod
    def forward(self, z: torch.Tensor) -> Quantized:
        """Quantize ``z``; in training mode this is also where the quantizer learns."""

    @abstractmethod
    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """The deterministic codes (B, h, w) of ``z``, changing no state: what encoding uses."""

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) -> z_q = e_c (B, D, h, w) in float32."""
        if codes.ndim != 3 or codes.is_floating_point() or codes.is_complex():
            raise ValueError(f"codes must be integers shaped (B, h, w), got {codes.dtype} "
                             f"{tuple(codes.shape)}")  # fmt: skip
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(
                f"codes must be in [0, {self.codebook_size}), got values from "
                f"{int(codes.min())} to {int(codes.max())}"
            )
        e_c = F.embedding(codes.long(), self.codebook.float())  # (B, h, w, D)
        return e_c.permute(0, 3, 1, 2).contiguous()  # (B, D, h, w)

    def _check(self, z: torch.Tensor) -> None:
        if z.ndim != 4 or z.shape[1] != self.dim:
            raise ValueError(f"z must be (B, {self.dim}, h, w), got {tuple(z.shape)}")

    def _stats(self, codes: torch.Tensor) -> dict[str, float]:
        counts = code_counts(codes, self.codebook_size)
        return {"usage": usage(counts), "perplexity": perplexity(counts)}


class VectorQuantizer(Quantizer):
    """Nearest codebook entry, straight-through gradients, EMA codebook, dead-code restarts."""

    def __init__(
        self,
        *,
        codebook_size: int,
        dim: int,
        beta: float = 0.25,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_after: int = 100,
    ) -> None:
        super().__init__(codebook_size=codebook_size, dim=dim)
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {beta}")
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if dead_after < 1:
            raise ValueError(f"dead_after must be at least 1 step, got {dead_after}")
        self.beta, self.decay, self.eps, self.dead_after = beta, decay, eps, dead_after
        codebook = torch.randn(codebook_size, dim)
        # Buffers, not parameters: the optimizer never sees them, checkpoints and folders do.
        self.register_buffer("codebook", codebook)  # e_k
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # N_k
        self.register_buffer("embed_sum", codebook.clone())  # m_k = N_k e_k
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, z: torch.Tensor) -> Quantized:
        self._check(z)
        batch, _, height, width = z.shape
        with torch.autocast(z.device.type, enabled=False):
            flat = z.float().permute(0, 2, 3, 1).reshape(-1, self.dim)  # (B h w, D)
            if self.training and not bool(self.initialised):
                with torch.no_grad():
                    every = torch.ones(self.codebook_size, dtype=torch.bool, device=z.device)
                    self._restart(every, flat.detach())
                    self.initialised.fill_(True)
            codes = self._nearest(flat)  # (B h w,)
            e_c = F.embedding(codes, self.codebook)  # (B h w, D), a copy: the update is in place
            commitment = F.mse_loss(flat, e_c)
            z_q = flat + (e_c - flat).detach()
            if self.training:
                with torch.no_grad():
                    self._update(flat.detach(), codes)
        # Contiguous: a channels-last z_q would carry that layout through the decoder, where
        # GroupNorm's backward pass is several times slower in it on a CPU.
        z_q = z_q.view(batch, height, width, self.dim).permute(0, 3, 1, 2).contiguous()
        codes = codes.view(batch, height, width)
        stats = {"commitment": commitment.item(), **self._stats(codes)}
        return Quantized(z_q, codes, self.beta * commitment, stats)

    @torch.no_grad()
    def codes(self, z: torch.Tensor) -> torch.Tensor:
        self._check(z)
        batch, _, height, width = z.shape
        with torch.autocast(z.device.type, enabled=False):
            flat = z.float().permute(0, 2, 3, 1).reshape(-1, self.dim)
            return self._nearest(flat).view(batch, height, width)

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """argmin_k ||z_i - e_k||^2 = argmin_k (||e_k||^2 - 2 z_i . e_k): (N,) long."""
        e = self.codebook
        distances = torch.addmm(e.pow(2).sum(1), flat.detach(), e.t(), alpha=-2)  # (N, K)
        return distances.argmin(1)

    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """One EMA step of the codebook towards the batch's assignments, then restarts."""
        n = code_counts(codes, self.codebook_size).float()  # (K,)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat)  # (K, D)
        self.cluster_size.mul_(self.decay).add_(n, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        k = self.codebook_size
        smoothed = (self.cluster_size + self.eps) / (total + k * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        self.unused_steps.add_(1).masked_fill_(n > 0, 0)
        dead = self.unused_steps >= self.dead_after
        if dead.any():
            self._restart(dead, flat)

    def _restart(self, which: torch.Tensor, flat: torch.Tensor) -> None:
        """Codes where ``which`` (K,) is true become random distinct rows of ``flat`` (N, D)
        (repeating rows only when N is smaller than their number), counted once each."""
        count = int(which.sum())
        if len(flat) >= count:
            rows = torch.randperm(len(flat), device=flat.device)[:count]
        else:
            rows = torch.randint(len(flat), (count,), device=flat.device)
        self.codebook[which] = flat[rows]
        self.embed_sum[which] = flat[rows]
        self.cluster_size[which] = 1.0
        self.unused_steps[which] = 0


class GumbelQuantizer(Quantizer):
    """Logits over K codes per position, a Gumbel-softmax relaxation in training, argmax in eval."""

    def __init__(self, *, codebook_size: int, dim: int, kl_weight: float = 5e-4) -> None:
        super().__init__(codebook_size=codebook_size, dim=dim)
        if not (math.isfinite(kl_weight) and kl_weight >= 0):
            raise ValueError(f"kl_weight must be a finite number >= 0, got {kl_weight}")
        self.kl_weight = kl_weight
        self.proj = nn.Conv2d(dim, codebook_size, 1)  # W: z -> logits
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim))
        self._temperature = 1.0

    @property
    def temperature(self) -> float:
        """tau of the relaxation; the training task sets it from its schedule every step."""
        return self._temperature

    @temperature.setter
    def temperature(self, tau: float) -> None:
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {tau}")
        self._temperature = float(tau)

    def forward(self, z: torch.Tensor) -> Quantized:
        self._check(z)
        with torch.autocast(z.device.type, enabled=False):
            logits = self.proj(z.float())  # (B, K, h, w)
            log_q = logits.log_softmax(1)
            kl = (log_q.exp() * (log_q + math.log(self.codebook_size))).sum(1).mean()
            if self.training:
                y = F.gumbel_softmax(logits, tau=self._temperature, dim=1)  # (B, K, h, w)
                codes = y.argmax(1)
                z_q = torch.einsum("bkhw,kd->bdhw", y, self.codebook).contiguous()  # (B, D, h, w)
            else:
                codes = logits.argmax(1)
                z_q = self.embed(codes)
        stats = {"kl": kl.item(), **self._stats(codes)}
        return Quantized(z_q, codes, self.kl_weight * kl, stats)

    @torch.no_grad()
    def codes(self, z: torch.Tensor) -> torch.Tensor:
        self._check(z)
        with torch.autocast(z.device.type, enabled=False):
            return self.proj(z.float()).argmax(1)
