"""The latent-diffusion task: a tiny model overfits a handful of images; export and reload."""

import numpy as np
import torch

from atelier.data.shapes import ShapesDataset
from atelier.diffusion.config import DiffusionConfig
from atelier.models.unet import UNet, UNetConfig
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe
from atelier.training.ldm import LatentDiffusionTask, LDMObjective


def tiny_task(prediction_type="epsilon"):
    torch.manual_seed(0)
    data = ShapesDataset(4, resolution=32, seed=1)
    images = torch.stack([data[i][0] for i in range(4)])
    captions = [data[i][1] for i in range(4)]
    text = build_text_encoder(
        TextEncoderConfig(kind="transformer", max_length=32, width=32, layers=1, heads=2),
        tokenizer=train_bpe(captions * 3, vocab_size=300),
    )
    unet = UNet(
        UNetConfig(
            in_channels=3,
            out_channels=3,
            block_channels=(16, 32),
            layers_per_block=1,
            groups=8,
            heads=2,
            context_dim=32,
            attention_levels=(False, True),
        )
    )
    task = LatentDiffusionTask(
        unet=unet,
        text_encoder=text,
        diffusion=DiffusionConfig(prediction_type=prediction_type),
        objective=LDMObjective(p_uncond=0.0, weighting="uniform"),
        latent_shape=(3, 32, 32),
    )
    return task, (images, captions)


def test_tiny_model_overfits_a_handful_of_images():
    task, batch = tiny_task()
    params = [p for m in task.modules().values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for step in range(120):
        torch.manual_seed(123)  # the same t, noise and caption dropout every step: a fixed target
        loss, logs = task.loss(batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
    assert logs["t"].shape == (4,) and logs["loss"].shape == (4,)


def test_modules_include_the_trainable_text_encoder_only():
    task, _ = tiny_task()
    assert set(task.modules()) == {"unet", "text_encoder"}


def test_caption_dropout_uses_the_null_embedding():
    task, (images, captions) = tiny_task()
    task.objective = LDMObjective(p_uncond=0.999999)
    seen = []
    original = task.text_encoder.encode
    task.text_encoder.encode = lambda prompts: seen.extend(prompts) or original(prompts)
    task.loss((images, captions), 0)
    assert seen == [""] * 4


def test_random_keep_masks_mix_every_kind_of_edit():
    from atelier.training.ldm import random_keep_masks

    torch.manual_seed(0)
    keep = random_keep_masks(400, 16, 16)
    assert keep.shape == (400, 1, 16, 16) and set(keep.unique().tolist()) <= {0.0, 1.0}
    painted = 1 - keep.mean((1, 2, 3))
    assert 0.05 < (painted == 1).float().mean() < 0.2  # about 10% are text-to-image
    assert (painted == 0).sum() == 0  # every mask paints something
    assert ((painted > 0) & (painted < 1)).float().mean() > 0.8


def test_object_masks_cover_the_cells_the_latents_show_objects_in():
    """The shipped VAE's latents of rendered scenes: occupied_cells finds exactly the cells that
    hold objects, and the object masks paint one of them."""
    from atelier.data.base import array_to_tensor
    from atelier.kinds.registry import load_model
    from atelier.shapes.render import render
    from atelier.shapes.scene import sample_scene
    from atelier.training.ldm import occupied_cells, random_keep_masks

    rng = np.random.default_rng(5)
    scenes = [sample_scene(rng, split="train") for _ in range(32)]
    pipe = load_model("shapes-ldm-minilm").pipeline()
    z = pipe.encode(torch.stack([array_to_tensor(render(s, 64)) for s in scenes]))
    found = occupied_cells(z)
    truth = torch.zeros_like(found)
    for i, s in enumerate(scenes):
        for o in s.spec().objects:
            truth[i, o.cell[0] * 3 + o.cell[1]] = True
    assert torch.equal(found, truth)

    torch.manual_seed(0)
    occupied = torch.zeros(400, 9, dtype=torch.bool)
    occupied[:, 4] = True  # every image has one object, in the centre
    keep = random_keep_masks(400, 16, 16, occupied=occupied)
    centre_only = (keep[:, 0, 5:10, 5:10] == 0).all((1, 2)) & (keep.mean((1, 2, 3)) > 0.85)
    assert 0.2 < centre_only.float().mean() < 0.4  # the object masks (25%) and a few others
