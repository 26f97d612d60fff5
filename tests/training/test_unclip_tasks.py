"""unCLIP training: CLIP's view of the data computed once (image embeddings, caption encodings),
the prior's and the decoder's dropout, a tiny prior and a tiny decoder overfitting a handful of
pairs, and `atelier train shapes-unclip-prior` then `shapes-unclip` end to end (caches, cards
counting the CLIP once, the installed model generating by name)."""

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from atelier.cli import app
from atelier.data.clip_embeddings import CaptionEncodings, ImageEmbeddingDataset
from atelier.data.shapes import ShapesDataset
from atelier.kinds.registry import load_model, load_text_to_image
from atelier.models.latent_space import LatentSpace
from atelier.models.prior import PriorConfig, PriorTransformer
from atelier.models.unet import UNet
from atelier.pipelines.unclip import read_caption
from atelier.training.unclip_tasks import DecoderTask, PriorTask, UnCLIPObjective
from tests.pipelines.unclip_models import (
    DECODER_DIFFUSION,
    PRIOR_DIFFUSION,
    tiny_clip,
    tiny_decoder_config,
)

CAPTIONS = ["a red circle", "a blue square above a green triangle", "three yellow circles",
            "a green square"]  # fmt: skip
NO_DROPOUT = UnCLIPObjective(p_uncond=0.0, p_drop_embedding=0.0, p_drop_caption=0.0)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def pairs(n: int = 4):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 3, 16, 16, generator=g) * 2 - 1,
            F.normalize(torch.randn(n, 8, generator=g), dim=-1))  # fmt: skip


def test_caption_encodings_are_computed_once_and_read_back(clip, tmp_path):
    file = tmp_path / "captions.safetensors"
    calls = []

    def encode(prompts):
        calls.append(len(prompts))
        return read_caption(clip, prompts)

    encodings = CaptionEncodings([*CAPTIONS, CAPTIONS[0], ""], encode, cache_file=file,
                                 batch_size=3, progress=False)  # fmt: skip
    assert calls == [3, 1] and file.is_file()  # four unique captions, the blank one not encoded
    prompts = [CAPTIONS[2], "", CAPTIONS[0]]
    looked_up, live = encodings(prompts), read_caption(clip, prompts)
    assert torch.equal(looked_up.mask, live.mask)
    torch.testing.assert_close(looked_up.states, live.states, rtol=0, atol=1e-6)
    torch.testing.assert_close(looked_up.pooled, live.pooled, rtol=0, atol=1e-6)
    assert looked_up.pooled[1].abs().sum() == 0 and looked_up.mask[1].sum() == 1  # the null
    again = CaptionEncodings(CAPTIONS, lambda p: pytest.fail("encoded again"), cache_file=file,
                             progress=False)  # fmt: skip
    assert torch.equal(again(prompts).states, looked_up.states)
    with pytest.raises(KeyError, match="was not encoded beforehand"):
        encodings(["a purple triangle"])
    with pytest.raises(ValueError, match="does not match these captions; delete it"):
        CaptionEncodings(CAPTIONS[:2], encode, cache_file=file, progress=False)


def test_image_embeddings_are_computed_once(clip, tmp_path):
    images = ShapesDataset(6, resolution=32, seed=0)
    file = tmp_path / "embeddings.safetensors"
    encode = lambda x: clip.encode_image(F.interpolate(x, size=16))  # noqa: E731
    data = ImageEmbeddingDataset(images, encode, clip_digest="abc", cache_file=file,
                                 progress=False)  # fmt: skip
    (image, z), caption = data[2]
    assert image.shape == (3, 32, 32) and z.shape == (8,) and caption == images[2][1]
    assert torch.allclose(z.norm(), torch.tensor(1.0))
    again = ImageEmbeddingDataset(images, lambda x: pytest.fail("encoded again"),
                                  clip_digest="abc", cache_file=file, progress=False)  # fmt: skip
    assert torch.equal(again.embeddings, data.embeddings)
    with pytest.raises(ValueError, match="does not match this dataset"):
        ImageEmbeddingDataset(images, encode, clip_digest="another", cache_file=file)


class Recorder(torch.nn.Module):
    """Answers zero and keeps what it was given."""

    def __init__(self, config=None):
        super().__init__()
        self.config, self.seen = config, []
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, caption, image=None):
        self.seen.append((caption, image))
        return torch.zeros_like(x) * self.weight


def test_each_network_learns_its_unconditional_model_from_dropout(clip):
    encodings = CaptionEncodings(CAPTIONS, lambda p: read_caption(clip, p), progress=False)
    x, z = pairs()
    prior = Recorder()
    task = PriorTask(prior=prior, diffusion=PRIOR_DIFFUSION, space=LatentSpace.measure(z),
                     captions=encodings, objective=UnCLIPObjective(p_uncond=0.999))  # fmt: skip
    task.loss(((x, z), CAPTIONS), 0)
    caption = prior.seen[0][0]
    assert caption.pooled.abs().sum() == 0 and caption.mask.sum() == 4  # every caption dropped
    config = tiny_decoder_config()
    for objective, embedding_dropped, caption_dropped in (
        (UnCLIPObjective(p_drop_embedding=0.999, p_drop_caption=0.0), True, False),
        (UnCLIPObjective(p_drop_embedding=0.0, p_drop_caption=0.999), False, True),
    ):
        decoder = Recorder(config)
        DecoderTask(decoder=decoder, diffusion=DECODER_DIFFUSION, captions=encodings,
                    objective=objective).loss(((x, z), CAPTIONS), 0)  # fmt: skip
        text, image = decoder.seen[0]
        assert image.dropped.tolist() == [embedding_dropped] * 4
        assert (text.mask.sum() == 4) == caption_dropped
        assert torch.equal(image.embeds, z)  # the embedding is given; the flag says ignore it


def overfit(task, parameters, lr: float, steps: int, batch) -> tuple[float, float]:
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    losses = []
    for step in range(steps):
        loss, _ = task.loss(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], sum(losses[-20:]) / 20


def test_a_tiny_prior_overfits_a_handful_of_pairs(clip, one_thread):
    """Four captions each with its own embedding: the x_0 loss falls from about 0.8 to a
    thousandth of it."""
    encodings = CaptionEncodings(CAPTIONS, lambda p: read_caption(clip, p), progress=False)
    x, z = pairs()
    torch.manual_seed(0)
    prior = PriorTransformer(PriorConfig(embed_dim=8, text_dim=16, text_length=16, width=64,
                                         layers=2, heads=4))  # fmt: skip
    task = PriorTask(prior=prior, diffusion=PRIOR_DIFFUSION, space=LatentSpace.measure(z),
                     captions=encodings, objective=NO_DROPOUT)  # fmt: skip
    first, last = overfit(task, prior.parameters(), 1e-3, 200,
                          ((x.repeat(4, 1, 1, 1), z.repeat(4, 1)), CAPTIONS * 4))  # fmt: skip
    assert first > 0.5 and last * 100 < first, (first, last)


def test_a_tiny_decoder_overfits_a_handful_of_images(clip, one_thread):
    """Four 16 px images drawn from their embeddings: the v loss falls to a fifth or less."""
    encodings = CaptionEncodings(CAPTIONS, lambda p: read_caption(clip, p), progress=False)
    x, z = pairs()
    torch.manual_seed(0)
    decoder = UNet(tiny_decoder_config())
    task = DecoderTask(decoder=decoder, diffusion=DECODER_DIFFUSION, captions=encodings,
                       objective=NO_DROPOUT)  # fmt: skip
    first, last = overfit(task, decoder.parameters(), 3e-3, 200,
                          ((x.repeat(2, 1, 1, 1), z.repeat(2, 1)), CAPTIONS * 2))  # fmt: skip
    assert first > 0.4 and last * 5 < first, (first, last)


TINY = ["data.n=24", "train.batch_size=4", "train.checkpoint_every=1", "train.sample_every=2",
        "train.log_every=1", "train.ema_start=1", "unclip_sampling.steps=2",
        "unclip_sampling.prior_steps=2"]  # fmt: skip
TINY_PRIOR = ["prior.width=32", "prior.layers=1", "prior.heads=2"]
TINY_DECODER = ["unet.block_channels=[16,32]", "unet.attention_levels=[false,true]",
                "unet.groups=8", "unet.heads=2"]  # fmt: skip


def test_train_the_prior_then_the_decoder_and_generate(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    runner = CliRunner()
    missing = runner.invoke(
        app,
        [
            "train",
            "shapes-unclip",
            *TINY,
            *TINY_DECODER,
            "train.max_steps=1",
            "--out",
            str(tmp_path / "early"),
        ],
    )
    # fmt: skip
    assert missing.exit_code != 0 and "train it first (atelier train shapes-unclip-prior)" in (
        missing.output
    )
    for steps, extra in ((2, []), (3, ["--resume"])):
        result = runner.invoke(app, ["train", "shapes-unclip-prior", *TINY, *TINY_PRIOR,
                                     f"train.max_steps={steps}", *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "shapes-unclip-prior"
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3] and "cosine" in rows[0]
    sampled = json.loads((run_dir / "samples" / "samples.jsonl").read_text().splitlines()[0])
    assert {"cos_image_pick", "cos_text_one"} <= set(sampled)
    prior_card = (tmp_path / "models" / "shapes-unclip-prior" / "README.md").read_text()
    assert "its CLIP shapes-clip-bind: 1.30 CPU-h" in prior_card
    prior = load_model("shapes-unclip-prior")
    assert prior.prior.config.embed_dim == 128 and len(prior.space.mean) == 128
    result = runner.invoke(app, ["train", "shapes-unclip", *TINY, *TINY_DECODER,
                                 "train.max_steps=2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # The CLIP read the training images and captions once for both runs.
    assert len(list((tmp_path / "data").glob("clip-text-*.safetensors"))) == 1
    embeddings = [p for p in (tmp_path / "data").glob("clip-*.safetensors") if "text" not in p.name]
    assert len(embeddings) == 1
    decoder_run = tmp_path / "runs" / "shapes-unclip" / "samples"
    assert (decoder_run / "samples-0000002.png").is_file()
    assert "judge_pass_embedding_only" in (decoder_run / "samples.jsonl").read_text()
    card = (tmp_path / "models" / "shapes-unclip-local" / "README.md").read_text()
    assert "its prior shapes-unclip-prior (with its CLIP): 1.30 CPU-h" in card
    model = load_text_to_image("shapes-unclip-local")  # it ships: a run installs beside it
    assert model.resolution == 32 and model.defaults.steps == 2
    (image,) = model(["a red circle"], seeds=[0])
    assert image.size == (32, 32)
