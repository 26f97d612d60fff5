"""Text to image through discrete tokens: the caption as BPE ids (a ``"prefix"`` transformer) or
a frozen encoder's states (a ``"cross_attention"`` one), a token transformer sampled by
``tokens/``, the image tokenizer's decoder. Assembly only.

Images are made ``rows`` at a time: every chunk of prompts is padded to exactly ``rows`` (with the
negative prompt and a fixed seed) and sampled and decoded as one batch of that size, each image
drawing from its own generator, so an image's pixels do not depend on its batch: a batch gives
the same images as single runs, bit for bit (see ``fixed_batch.py`` for why the size is fixed).
Classifier-free guidance runs the conditional and unconditional (negative prompt, by default the
empty caption the model was trained to draw from, as ids or as the encoder's null states) rows as
one batch of 2 ``rows``.

Known tokens (inpainting and outpainting, ``token_editing.py``): :meth:`TokenPipeline.sample`
takes the codes of an image and a keep mask; each pipeline keeps those tokens and draws the rest
its own way (MaskGIT masks only the others; DALL-E teacher-forces them in row-major order).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import torch
from PIL import Image

from atelier.data.base import tensor_to_pil
from atelier.models.token_transformer import (
    AutoregressiveTransformer,
    KVCache,
    MaskedTokenTransformer,
    Text,
    TokenTransformer,
    cat_text,
    text_rows,
)
from atelier.models.tokenizer import ImageTokenizer
from atelier.pipelines.fixed_batch import fixed_batch
from atelier.text.encoder import TextEncoder
from atelier.text.tokenizer import BPETokenizer
from atelier.tokens.autoregressive import TokenCallback, TokenStep, sample_autoregressive
from atelier.tokens.logits import LogitsFn, with_guidance
from atelier.tokens.masked import get_schedule, masked_decode
from atelier.tokens.options import AutoregressiveOptions, MaskedOptions

N = TypeVar("N", bound=TokenTransformer)
O = TypeVar("O", AutoregressiveOptions, MaskedOptions)  # noqa: E741


def cached_logits(network: AutoregressiveTransformer, text: Text) -> LogitsFn:
    """c_<i -> the logits of c_i (B, K) for one left-to-right pass, feeding the network only
    c_{i-1}: its KV cache holds the text (or its cross-attention keys) and the tokens before."""
    cache: KVCache | None = None

    def next_logits(tokens: torch.Tensor) -> torch.Tensor:
        nonlocal cache
        if tokens.shape[1] == 0:
            logits, cache = network.start(text)
            return logits
        if cache is None or cache.length != network.prefix_length + tokens.shape[1] - 1:
            raise ValueError("a cached logits function follows one pass, one token at a time")
        return network.extend(tokens[:, -1], cache)

    return next_logits


def uncached_logits(network: AutoregressiveTransformer, text: Text) -> LogitsFn:
    """c_<i -> the logits of c_i (B, K), running the network over the whole sequence."""
    return lambda tokens: network(text, tokens)[:, -1]


class TokenPipeline(ABC, Generic[N, O]):
    """What both token pipelines share: captions to ids or states, chunks of ``rows``, decoding.

    A ``"prefix"`` network takes ``text_tokenizer``, a ``"cross_attention"`` one ``text_encoder``
    (its window and width the network's ``text_length`` and ``context_dim``).
    """

    def __init__(
        self,
        *,
        network: N,
        text_tokenizer: BPETokenizer | None = None,
        text_encoder: TextEncoder | None = None,
        image_tokenizer: ImageTokenizer,
        rows: int = 4,
    ) -> None:
        if rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        config = network.config
        if config.cross_attention:
            if text_encoder is None or text_tokenizer is not None:
                raise ValueError("a cross-attention token transformer reads a text encoder's "
                                 "states: pass text_encoder, not text_tokenizer")  # fmt: skip
            reads = (text_encoder.max_length, text_encoder.dim)
            if reads != (config.text_length, config.context_dim):
                raise ValueError(
                    f"the text encoder gives {text_encoder.max_length} states of "
                    f"{text_encoder.dim} but the transformer reads {config.text_length} of "
                    f"{config.context_dim}"
                )
        elif text_tokenizer is None or text_encoder is not None:
            raise ValueError("a prefix token transformer reads BPE ids: pass text_tokenizer, "
                             "not text_encoder")  # fmt: skip
        self.network = network.eval()
        self.text_tokenizer = text_tokenizer
        self.text_encoder = text_encoder.eval() if text_encoder is not None else None
        self.image_tokenizer = image_tokenizer.eval()
        self.rows = rows

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def text_ids(self, prompts: Sequence[str]) -> torch.Tensor:
        """BPE ids (B, T) in the network's window; a longer prompt is truncated with a
        ``PromptTruncatedWarning``."""
        window = self.network.config.text_length
        return self.text_tokenizer.encode(prompts, max_length=window).ids.to(self.device)

    def text_inputs(self, prompts: Sequence[str]) -> Text:
        """What the network reads of ``prompts``: BPE ids (B, T), or the encoder's states (the
        blank prompt's are its null states); a longer prompt than the window is truncated
        with a ``PromptTruncatedWarning``."""
        if self.text_encoder is None:
            return self.text_ids(prompts)
        if not prompts:  # an encoder refuses an empty batch: no rows of a one-row one
            return text_rows(self.text_encoder.null_embedding(1).to(self.device), [])
        # One prompt at a time: BERT pads a batch to its longest prompt, which changes the last
        # bits of every state, and an image must not depend on the prompts beside it.
        return cat_text([self.text_encoder.encode([p]) for p in prompts]).to(self.device)

    @torch.no_grad()
    def __call__(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: O,
        callback: TokenCallback | None = None,
    ) -> list[Image.Image]:
        codes = self.sample(prompts, seeds=seeds, negative_prompt=negative_prompt,
                            options=options, callback=callback)  # fmt: skip
        return [tensor_to_pil(x) for x in self.decode(codes)]

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        negative_prompt: str = "",
        options: O,
        callback: TokenCallback | None = None,
        known: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token grids (B, g, g), image i drawn with a generator seeded ``seeds[i]``. With
        ``known`` codes (B, g, g) and ``keep`` (B, g, g, bool), the tokens where ``keep`` holds
        are ``known``'s and only the others are drawn."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, not one string")
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one each")
        g = self.network.config.grid
        if (known is None) != (keep is None):
            raise ValueError("give known tokens and their keep mask together")
        if known is None:
            known = torch.zeros(len(prompts), g, g, dtype=torch.long)
            keep = torch.zeros(len(prompts), g, g, dtype=torch.bool)
        if not known.shape == keep.shape == (len(prompts), g, g):
            raise ValueError(f"known tokens and keep mask must be ({len(prompts)}, {g}, {g}), "
                             f"got {tuple(known.shape)} and {tuple(keep.shape)}")  # fmt: skip
        known = known.reshape(len(prompts), g * g).to(self.device)  # (B, n), row-major
        keep = keep.reshape(len(prompts), g * g).to(self.device, torch.bool)
        cond = self.text_inputs(prompts)  # B rows
        uncond = self.text_inputs([negative_prompt])  # 1 row
        chunks = range(0, len(prompts), self.rows)
        out = [torch.zeros(0, g * g, dtype=torch.long, device=self.device)]
        for c, start in enumerate(chunks):
            n = min(self.rows, len(prompts) - start)
            pad = self.rows - n
            text = cat_text([text_rows(cond, slice(start, start + n)),
                             text_rows(uncond, [0] * pad)])  # fmt: skip
            generators = [torch.Generator().manual_seed(int(s)) for s in seeds[start : start + n]]
            generators += [torch.Generator().manual_seed(0) for _ in range(pad)]
            # Padding rows know nothing: they are drawn whole, as in text-to-image.
            rows_known = torch.cat([known[start : start + n], known.new_zeros(pad, g * g)])
            rows_keep = torch.cat([keep[start : start + n], keep.new_zeros(pad, g * g)])
            step = _offset(callback, c, len(chunks))
            codes = self.sample_rows(text, text_rows(uncond, [0] * self.rows), generators,
                                     options, step, rows_known, rows_keep)  # fmt: skip
            out.append(codes[:n])
        return torch.cat(out).view(-1, g, g)

    @abstractmethod
    def sample_rows(
        self,
        text: Text,
        uncond: Text,
        generators: list[torch.Generator],
        options: O,
        callback: TokenCallback | None,
        known: torch.Tensor,
        keep: torch.Tensor,
    ) -> torch.Tensor:
        """Tokens (rows, n) for one chunk of prompts' ``text`` (rows of ids or states),
        equal to ``known`` (rows, n) wherever ``keep`` (rows, n, bool) holds: what each
        pipeline does its own way."""

    def guided(self, make: Callable[[Text], LogitsFn], text: Text, uncond: Text,
               scale: float) -> LogitsFn:  # fmt: skip
        """The logits function ``make`` builds for ``text``, guided by ``scale`` against the
        ``uncond`` rows (no unconditional pass at scale 1)."""
        if scale == 1:
            return make(text)
        return with_guidance(make(cat_text([text, uncond])), scale)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> token grids (B, H / f, W / f), ``rows`` at a time
        (as for decoding: an image's codes never depend on its batch)."""
        return fixed_batch(self.image_tokenizer.encode, self.rows)(images.to(self.device))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Token grids (B, g, g) -> images (B, 3, H, W) in [-1, 1], ``rows`` at a time."""
        if not len(codes):
            side = codes.shape[-1] * self.image_tokenizer.config.downsampling_factor
            return torch.zeros(0, 3, side, side)
        out = []
        for start in range(0, len(codes), self.rows):
            chunk = codes[start : start + self.rows]
            pad = chunk.new_zeros((self.rows - len(chunk), *chunk.shape[1:]))
            out.append(self.image_tokenizer.decode_codes(torch.cat([chunk, pad]))[: len(chunk)])
        return torch.cat(out)


def _offset(callback: TokenCallback | None, chunk: int, chunks: int) -> TokenCallback | None:
    """``callback`` seeing chunk ``chunk``'s steps as steps of the whole call."""
    if callback is None:
        return None
    return lambda info: callback(
        TokenStep(chunk * info.total + info.i, chunks * info.total, info.tokens)
    )


class AutoregressivePipeline(TokenPipeline[AutoregressiveTransformer, AutoregressiveOptions]):
    """DALL-E: the image tokens one at a time, row-major, known tokens teacher-forced (a drawn
    token sees the known ones before it, not those after it); ``use_cache=False`` runs the
    whole sequence for every token (the reference the KV cache is tested and timed against)."""

    def __init__(self, *, use_cache: bool = True, **parts) -> None:
        super().__init__(**parts)
        self.use_cache = use_cache

    def sample_rows(self, text, uncond, generators, options, callback, known, keep
                    ) -> torch.Tensor:  # fmt: skip
        make = cached_logits if self.use_cache else uncached_logits
        next_logits = self.guided(lambda t: make(self.network, t), text, uncond,
                                  options.guidance)  # fmt: skip
        return sample_autoregressive(
            next_logits, batch=len(text), length=self.network.config.image_length,
            generators=generators, temperature=options.temperature, top_k=options.top_k,
            top_p=options.top_p, known=known, keep=keep, callback=callback, device=self.device,
        )  # fmt: skip


class MaskedPipeline(TokenPipeline[MaskedTokenTransformer, MaskedOptions]):
    """MaskGIT: every token at once, the most confident kept at each of ``options.steps``;
    known tokens are the start, masked only where they are to be drawn."""

    def sample_rows(self, text, uncond, generators, options, callback, known, keep
                    ) -> torch.Tensor:  # fmt: skip
        network = self.network
        logits_fn = self.guided(lambda t: lambda tokens: network(t, tokens), text, uncond,
                                options.guidance)  # fmt: skip
        tokens = known.masked_fill(~keep, network.mask_id)  # (rows, n)
        return masked_decode(
            logits_fn, tokens, mask_id=network.mask_id, steps=options.steps,
            generators=generators, temperature=options.temperature,
            choice_temperature=options.choice_temperature,
            schedule=get_schedule(options.schedule), callback=callback,
        )  # fmt: skip
