"""The shapes world as a dataset: item ``i`` is a fresh scene, its render and a random caption.

Item ``i`` is a pure function of ``(seed, i)``, so the dataset is the same on every machine and
in every DataLoader worker, whether it is rendered on the fly or read from the disk cache (one
safetensors file of uint8 pixels, with the captions and scene specs in its metadata).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save
from tqdm import tqdm

from atelier.atomic import write_atomic
from atelier.data.base import array_to_tensor
from atelier.shapes.caption import caption, caption_spec
from atelier.shapes.negatives import hard_negatives
from atelier.shapes.render import render
from atelier.shapes.scene import SceneSplit, sample_scene
from atelier.shapes.world import SIZES_AVAILABLE, SPEC_VERSION, Scene, SceneSpec


class ShapesDataset:
    """``n`` captioned shapes-world scenes at ``resolution`` px (32, 64 or 128).

    ``split="train"`` never shows a held-out colour-shape pair. With ``cache_dir`` the whole set is
    rendered once to ``cache_dir/<key>.safetensors`` and read from there afterwards.
    """

    def __init__(
        self,
        n: int,
        *,
        resolution: int = 64,
        seed: int = 0,
        split: SceneSplit = "train",
        cache_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        if n < 1:
            raise ValueError(f"a shapes dataset needs n >= 1 images, got {n}")
        if resolution not in SIZES_AVAILABLE:
            raise ValueError(
                f"the shapes world renders at {SIZES_AVAILABLE} px, not {resolution}; "
                "pick one of those and resize in the model if you need another"
            )
        self.n, self.resolution, self.seed, self.split = n, resolution, seed, split
        self._pixels: torch.Tensor | None = None  # (N, S, S, 3) uint8 when cached
        self._captions: list[str] | None = None
        if cache_dir is not None:
            self._load_or_build_cache(Path(cache_dir), progress)

    @property
    def cache_key(self) -> str:
        return f"shapes-{SPEC_VERSION}-{self.split}-s{self.seed}-n{self.n}-{self.resolution}px"

    def example(self, index: int) -> tuple[np.ndarray, str, SceneSpec]:
        """Render item ``index``: (S, S, 3) uint8 pixels, caption, and the scene's full spec."""
        scene, rng = self._scene(index)
        return render(scene, self.resolution), caption(scene, rng), scene.spec()

    def _scene(self, index: int) -> tuple[Scene, np.random.Generator]:
        """Item ``index``'s scene and its generator, positioned to draw the item's caption."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} images")
        rng = np.random.default_rng([self.seed, index])
        return sample_scene(rng, split=self.split), rng

    def caption_variants(self, index: int, k: int) -> list[str]:
        """``k`` true captions of item ``index``: its own caption, then ``k - 1`` more drawn with
        their own generators (facts stated, word order and phrasing vary), so the item and its
        first caption stay what they are with ``k = 1``."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scene, rng = self._scene(index)
        first = caption(scene, rng)
        return [first] + [
            caption(scene, np.random.default_rng([self.seed, index, j])) for j in range(1, k)
        ]

    def hard_negatives(self, index: int, k: int, *, focus: tuple[str, ...] = (),
                       focus_p: float = 0.0) -> list[tuple[str, str]]:  # fmt: skip
        """``k`` false captions of item ``index`` as ``(text, kind)``, each its own caption with
        one fact changed (``shapes/negatives.py``, ``focus`` kinds drawn first with probability
        ``focus_p``), drawn with the item's own generators."""
        scene, rng = self._scene(index)
        spec = caption_spec(scene, rng)
        phrasing = rng.bit_generator.state
        draws = np.random.default_rng([self.seed, index, 1_000_003])
        return hard_negatives(scene, spec, phrasing, k, draws, focus=focus, focus_p=focus_p,
                              allow_held_out=self.split != "train")  # fmt: skip

    def spec(self, index: int) -> SceneSpec:
        """The full spec of item ``index`` (every object with size and cell), without rendering."""
        return self._scene(index)[0].spec()

    @property
    def captions(self) -> list[str] | None:
        """Every item's caption when the render cache is loaded (else None)."""
        return self._captions

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        if self._pixels is not None and self._captions is not None:
            if not 0 <= index < self.n:
                raise IndexError(f"index {index} out of range for {self.n} images")
            return array_to_tensor(self._pixels[index].numpy()), self._captions[index]
        pixels, text, _ = self.example(index)
        return array_to_tensor(pixels), text

    def _load_or_build_cache(self, cache_dir: Path, progress: bool) -> None:
        path = cache_dir / f"{self.cache_key}.safetensors"
        if not path.is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            images, captions, specs = [], [], []
            for i in tqdm(range(self.n), desc="rendering shapes", disable=not progress):
                pixels, text, spec = self.example(i)
                images.append(pixels)
                captions.append(text)
                specs.append(spec.to_dict())
            meta = {
                "captions": json.dumps(captions),
                "specs": json.dumps(specs),
                "key": self.cache_key,
            }
            write_atomic(path, save({"pixels": torch.from_numpy(np.stack(images))}, metadata=meta))
        with safe_open(path, framework="pt") as f:
            meta = f.metadata()
            pixels = f.get_tensor("pixels")
        if meta.get("key") != self.cache_key or pixels.shape[0] != self.n:
            raise ValueError(
                f"cache file {path} does not hold {self.cache_key}; delete it to rebuild"
            )
        self._pixels, self._captions = pixels, json.loads(meta["captions"])
