"""The unCLIP pipeline and folders: a batch gives the same images as single runs and a seed the
same image, DALL-E 2's pick keeps the closer of two prior samples, variations and text diffs,
every sampler drawing embeddings, and a folder that round trips or is refused clearly. The tiny
model is ``unclip_models.py``'s."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from atelier.data.base import tensor_to_pil
from atelier.diffusion.samplers import SAMPLER_NAMES
from atelier.kinds.registry import describe, load_model, load_text_to_image
from atelier.kinds.unclip import save_unclip
from atelier.pipelines import unclip as pipeline
from atelier.pipelines.unclip import TextDiff, read_caption
from atelier.unclip.embeddings import pick_closer
from tests.pipelines.unclip_models import tiny_unclip


def same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def model():
    return tiny_unclip()


def test_a_batch_gives_the_same_images_as_single_runs(model):
    prompts = ["a red circle", "three yellow circles", "", "a blue square", "a red circle"]
    seeds = [5, 6, 7, 8, 9]
    options = replace(model.defaults, prior_sampler="dpmpp_2m_sde", sampler="euler_ancestral")
    # Five images of two candidates, under guidance: 20 prior rows, beyond a chunk of 8.
    batch = model(prompts, seeds=seeds, options=options)
    for prompt, seed, image in zip(prompts, seeds, batch):
        (alone,) = model([prompt], seeds=[seed], options=options)
        assert same(alone, image)
    assert not same(batch[0], batch[4])  # seeds differ
    assert same(model(prompts[:1], seeds=[5], options=options)[0], batch[0])  # a seed replays
    assert model([], seeds=[]) == []
    steps = []
    model(prompts[:2], seeds=seeds[:2], callback=steps.append)
    d = model.defaults
    assert [s.i for s in steps] == list(range(d.prior_steps + d.steps))
    assert {s.total for s in steps} == {d.prior_steps + d.steps}
    with pytest.raises(ValueError, match="size 32 cannot be made"):
        model(["x"], seeds=[0], size=32)


def test_the_prior_keeps_the_closer_of_its_two_samples(model, monkeypatch):
    seen = []

    def spy(candidates, z_t):
        seen.append((candidates, z_t))
        return pick_closer(candidates, z_t)

    monkeypatch.setattr(pipeline, "pick_closer", spy)
    prompts, seeds = ["a red circle", "three yellow circles", "a blue square"], [1, 2, 3]
    prior = model.pipeline().prior
    gens = lambda: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    picked = prior(prompts, generators=gens(), options=model.defaults)
    one = prior(prompts, generators=gens(), options=replace(model.defaults, two_sample_pick=False))
    candidates, z_t = seen[0]
    assert candidates.shape == (3, 2, 8) and seen[1][0].shape == (3, 1, 8)
    torch.testing.assert_close(z_t, read_caption(model.prior.clip, prompts).pooled)
    # The first candidate is the one draw made without the pick (the generator's first noise).
    assert torch.equal(candidates[:, 0], one)
    scores = (candidates * z_t[:, None]).sum(-1)  # (3, 2)
    assert not torch.equal(candidates[:, 0], candidates[:, 1])
    for b in range(3):
        assert torch.equal(picked[b], candidates[b, int(scores[b].argmax())])
    assert torch.allclose(picked.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_draws_embeddings(model, sampler):
    options = replace(model.defaults, prior_sampler=sampler, prior_steps=3)
    prior = model.pipeline().prior
    z = prior(
        ["a red circle", "a blue square"],
        generators=[torch.Generator().manual_seed(s) for s in (0, 1)],
        options=options,
    )
    # fmt: skip
    assert z.shape == (2, 8) and torch.isfinite(z).all()
    (alone,) = prior(["a blue square"], generators=[torch.Generator().manual_seed(1)],
                     options=options)  # fmt: skip
    assert torch.equal(alone, z[1])


def test_variations_decode_the_images_own_embedding_and_text_diffs_move_it(model, monkeypatch):
    (source,) = model(["a red circle"], seeds=[0])
    images = model.variations(source, seeds=[3, 4, 5])
    assert len(images) == 3 and images[0].size == (16, 16)
    assert not same(images[0], images[1])
    assert same(model.variations(source, seeds=[4])[0], images[1])  # batch = single, seed replays
    decoded = []
    original = pipeline.UnCLIPDecoder.__call__
    monkeypatch.setattr(
        pipeline.UnCLIPDecoder,
        "__call__",
        lambda self, z, *a, **k: decoded.append(z) or original(self, z, *a, **k),
    )
    # fmt: skip
    pipe = model.pipeline()
    z_i = pipe.image_embeddings([source])
    diff = TextDiff("a blue circle", "a red circle", 0.5)
    moved = model.variations(source, seeds=[3], diff=diff)
    model.variations(source, seeds=[3])
    assert torch.equal(decoded[1][0], z_i[0])  # without a diff, the image's own embedding
    z_t = read_caption(model.prior.clip, [diff.toward, diff.away]).pooled
    direction = torch.nn.functional.normalize(z_t[0] - z_t[1], dim=0)
    assert (decoded[0][0] @ direction) > (z_i[0] @ direction)  # moved toward the new caption
    assert not same(moved[0], images[0])


def angle(u: torch.Tensor, v: torch.Tensor) -> float:
    """The angle between two unit vectors, well conditioned near 0 (atan2 of sine and cosine)."""
    u, v = u.double(), v.double()
    cos = u @ v
    return float(torch.atan2((v - cos * u).norm(), cos))


def test_an_interpolation_decodes_the_slerp_path_between_two_images_at_one_seed(model, monkeypatch):
    a, b = model(["a red circle", "three yellow circles"], seeds=[0, 1])
    frames = model.interpolate_images((a, b), seed=6, frames=5)
    assert len(frames) == 5 and frames[0].size == (16, 16)
    assert len({np.asarray(f).tobytes() for f in frames}) == 5  # the embedding moves
    # The ends are A's and B's own embeddings decoded at that seed: their variations.
    assert same(frames[0], model.variations(a, seeds=[6])[0])
    assert same(frames[-1], model.variations(b, seeds=[6])[0])
    decoded = []
    original = pipeline.UnCLIPDecoder.__call__

    def spy(self, z, prompts, *, generators, **kwargs):
        decoded.append((z, [g.initial_seed() for g in generators]))
        return original(self, z, prompts, generators=generators, **kwargs)

    monkeypatch.setattr(pipeline.UnCLIPDecoder, "__call__", spy)
    again = model.interpolate_images((a, b), seed=6, frames=5)
    assert all(same(x, y) for x, y in zip(again, frames))
    (path, seeds), z = decoded[0], model.pipeline().image_embeddings([a, b])
    assert seeds == [6] * 5  # every frame from the one seed's noise
    assert torch.equal(path[0], z[0]) and torch.equal(path[-1], z[1])
    # Each frame is its embedding decoded alone at the seed: a batch of frames is singles.
    (middle,) = model.pipeline().decoder(
        path[2:3], [""], options=model.defaults, generators=[torch.Generator().manual_seed(6)]
    )
    assert same(tensor_to_pil(middle), frames[2])
    # The random tiny CLIP puts every image within a few milliradians of every other, where a
    # slerp and a normalised lerp agree; two embeddings 1.2 rad apart tell them apart.
    pipe = model.pipeline()
    g = torch.Generator().manual_seed(1)
    ends = torch.nn.functional.normalize(torch.randn(2, 8, generator=g), dim=-1)  # (2, E)
    pipe.image_embeddings = lambda images: ends
    pipe.interpolate((a, b), seed=6, frames=5, options=model.defaults)
    path, omega = decoded[-1][0], angle(ends[0], ends[1])
    assert omega > 1.0
    for k, z_k in enumerate(path):
        theta = k / 4  # the k-th of 5 evenly spaced frames, both ends included
        assert abs(float(z_k.norm()) - 1) < 1e-6
        # On the great circle (the two arcs add up to omega), theta of the way along it.
        assert abs(angle(ends[0], z_k) - theta * omega) < 1e-5
        assert abs(angle(z_k, ends[1]) - (1 - theta) * omega) < 1e-5
    assert torch.equal(path[0], ends[0]) and torch.equal(path[-1], ends[1])
    with pytest.raises(ValueError, match="at least 2 frames"):
        model.interpolate_images((a, b), seed=6, frames=1)


def test_a_folder_round_trips(model, tmp_path):
    folder = save_unclip(model, tmp_path / "u", card="# u\n", prior_card="# p\n")
    assert (folder / "prior" / "clip" / "config.json").is_file()
    assert (folder / "prior" / "embedding_stats.safetensors").is_file()
    loaded = load_text_to_image(folder)
    assert loaded.model_hash == model.model_hash and loaded.defaults == model.defaults
    assert loaded.prior.space == model.prior.space
    for a, b in zip(model(["a red circle", "x"], seeds=[1, 2]),
                    loaded(["a red circle", "x"], seeds=[1, 2])):  # fmt: skip
        assert same(a, b)
    listed = describe(folder)
    assert listed.kind == "unclip" and listed.facts.text_to_image and listed.facts.resolution == 16
    assert describe(folder / "prior").facts.title.startswith("unCLIP prior over 8-dimensional")
    assert not describe(folder / "prior").facts.text_to_image


def test_a_folder_that_does_not_fit_together_is_refused(model, tmp_path):
    folder = save_unclip(model, tmp_path / "u", card="# u\n", prior_card="# p\n")
    config = json.loads((folder / "config.json").read_text())

    def refused(change, message, where="config.json"):
        broken = tmp_path / "broken"
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(folder, broken)
        change(broken, json.loads(json.dumps(config)))
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            load_model(broken)

    def write(path, data):
        path.write_text(json.dumps(data))

    def decoder(key, value):
        return lambda f, c: write(f / "config.json", {**c, "decoder": {**c["decoder"], key: value}})

    refused(decoder("image_embed_dim", 16), "the decoder needs the CLIP it was trained with")
    refused(decoder("image_embed_dim", None), "not an unCLIP decoder")
    refused(decoder("context_dim", 32), "the decoder needs the CLIP it was trained with")

    def prior_reads(f, c):
        sub = json.loads((f / "prior" / "config.json").read_text())
        sub["prior"]["text_length"] = 20
        write(f / "prior" / "config.json", sub)

    refused(prior_reads, "a prior needs the CLIP it was trained on")
    refused(lambda f, c: shutil.rmtree(f / "prior" / "clip"), "clip")
    refused(lambda f, c: (f / "prior" / "embedding_stats.safetensors").unlink(), "missing")
