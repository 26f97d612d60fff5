"""VQGAN-CLIP: weighted prompts, the loss going down on a tiny tokenizer and CLIP, every image
one of the codebook's, the filmstrip, an init image, and the command's checks."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.cutouts import CutoutOptions
from atelier.models.tokenizer import ImageTokenizer, TokenizerConfig
from atelier.pipelines.vqgan_clip import (
    VQGANCLIP,
    VQGANCLIPOptions,
    parse_weighted_prompts,
)


def test_weighted_prompts():
    assert parse_weighted_prompts("a red circle") == [("a red circle", 1.0)]
    assert parse_weighted_prompts("a red circle:2 | blue : -0.5|green square") == [
        ("a red circle", 2.0), ("blue", -0.5), ("green square", 1.0)]  # fmt: skip
    with pytest.raises(ValueError, match="empty sub-prompt"):
        parse_weighted_prompts("a | :3")
    with pytest.raises(ValueError, match="no positive weight"):
        parse_weighted_prompts("a:-1 | b:0")


class LinearCLIP:
    """A stand-in CLIP whose embeddings move with the image (an untrained ViT's barely do):
    E(x) = normalize(W x), each prompt a fixed random unit vector."""

    image_size = 8

    def __init__(self) -> None:
        self.w = torch.randn(3 * 8 * 8, 6, generator=torch.Generator().manual_seed(0))

    def encode_image(self, x):
        return torch.nn.functional.normalize(x.flatten(1) @ self.w, dim=-1)

    def encode_text(self, prompts):
        seeds = [sum(map(ord, p)) for p in prompts]
        rows = [torch.randn(6, generator=torch.Generator().manual_seed(s)) for s in seeds]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def tiny_pipe() -> VQGANCLIP:
    torch.manual_seed(0)
    tokenizer = ImageTokenizer(TokenizerConfig(block_channels=(8, 8), groups=4, embed_dim=4,
                                               codebook_size=16, encoder="patch"))  # fmt: skip
    tokenizer.quantizer.codebook.normal_()
    return VQGANCLIP(tokenizer, LinearCLIP(), resolution=16)


def test_optimisation_lowers_the_loss_and_draws_codebook_images():
    pipe = tiny_pipe()
    cut = CutoutOptions(count=4, noise=0.0, translate=0.0)
    options = VQGANCLIPOptions(iterations=30, lr=0.2, cutouts=cut, frames=4)
    result = pipe("a red circle | a blue square:-0.5", seed=3, options=options)
    # the loss of the start and of the result, on the same cutouts
    targets = torch.stack(
        [pipe.clip.encode_text([t])[0] for t in ("a red circle", "a blue square")]
    )
    weights = torch.tensor([1.0, -0.5])
    z0 = pipe.start(torch.Generator().manual_seed(3), None)
    z1 = pipe.tokenizer.quantizer.embed(result.codes[None])

    def loss(z):
        with torch.no_grad():
            return float(
                pipe.loss(z, z, targets, weights, cut, 0.0, torch.Generator().manual_seed(99))
            )

    assert loss(z1) < loss(z0) - 0.05, (loss(z0), loss(z1))
    assert len(result.losses) == 30 and len(result.frames) == 4
    # the image is exactly its codes' decoding: one a token model could draw
    drawn = pipe.tokenizer.decode_codes(result.codes[None])[0]
    image = torch.from_numpy(np.asarray(result.image).copy()).permute(2, 0, 1)
    assert (image.float() / 127.5 - 1 - drawn).abs().max() < 1 / 127.5 + 1e-4
    assert result.frame_steps == [0, 10, 19, 29]  # 4 frames over 30 steps, the last the image
    again = pipe("a red circle | a blue square:-0.5", seed=3, options=options)
    assert torch.equal(again.codes, result.codes)  # one seed, one image


def test_an_init_image_is_where_the_grid_starts():
    pipe = tiny_pipe()
    init = torch.rand(3, 16, 16) * 2 - 1
    z = pipe.start(torch.Generator(), init)
    torch.testing.assert_close(z, pipe.tokenizer.encoder(init[None]))
    with pytest.raises(ValueError, match="3 x 16 x 16"):
        pipe.start(torch.Generator(), torch.zeros(3, 8, 8))
    still = VQGANCLIPOptions(iterations=2, lr=1e-7, frames=1)
    held = pipe("a red circle", seed=0, init=init, options=still)
    assert torch.equal(held.codes, pipe.tokenizer.encode(init[None])[0])


@pytest.mark.parametrize("args,message", [
    (["x", "--iterations", "0"], "--iterations must be in [1, 2000]"),
    (["x | :2"], "empty sub-prompt"),
    (["x:-1"], "no positive weight"),
    (["x", "--lr", "-1"], "lr must be a positive number"),
    (["x", "--init", "/no/such.png"], "no init image file"),
    (["x", "--tokenizer", "shapes-clip"], "is a CLIP model, not a image tokenizer"),
])  # fmt: skip
def test_command_errors_are_clear(args, message, tmp_path):
    result = CliRunner().invoke(app, ["vqgan-clip", *args, "-o", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output, result.output
