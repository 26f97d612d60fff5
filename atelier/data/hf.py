"""A Hugging Face ``datasets.Dataset`` of images and captions, as an atelier dataset.

``datasets`` is optional: it is imported only when :class:`HFDataset` is built. Images are read
undecoded (``datasets.Image(decode=False)``) and decoded here, so a broken image becomes a skipped
row listed in ``report`` instead of an exception in the middle of training.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from atelier.data.images import (
    CAPTION_KEYS,
    DEFAULT_MAX_PIXELS,
    Entry,
    ImageRejected,
    ImageSource,
    ScannedImages,
    clean_caption,
)

if TYPE_CHECKING:
    import datasets as hf_datasets

_TEXT_DTYPES = ("string", "large_string")


def _import_datasets() -> ModuleType:
    try:
        import datasets
    except ImportError as error:
        raise ImportError(
            "HFDataset needs the Hugging Face datasets library: pip install datasets"
        ) from error
    return datasets


class HFDataset(ScannedImages):
    """Rows of an in-memory ``datasets.Dataset`` as (3, R, R) float32 tensors in [-1, 1] and str.

    Every image is decoded once here; unusable rows are skipped and non-RGB images converted, both
    listed in ``report`` (rows named ``"row <index>"``) and in one warning.
    """

    def __init__(
        self,
        dataset: hf_datasets.Dataset,
        *,
        resolution: int = 64,
        image_column: str = "image",
        text_column: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        cache: bool = True,
    ) -> None:
        """Wrap ``dataset``; ``text_column=None`` picks the first of "text", "caption" present.

        ``max_pixels`` and ``cache`` work as in :class:`~atelier.data.folder.ImageFolderDataset`.
        """
        super().__init__(resolution=resolution, max_pixels=max_pixels, cache=cache)
        datasets = _import_datasets()
        if isinstance(dataset, datasets.DatasetDict):
            raise ValueError(
                f"got a DatasetDict with splits {list(dataset)}; pass one split, "
                "e.g. dataset['train']"
            )
        if not isinstance(dataset, datasets.Dataset):
            raise ValueError(
                f"expected a datasets.Dataset, got {type(dataset).__name__}; a streaming "
                "dataset has no length, so load it without streaming=True"
            )
        columns = dataset.column_names
        if image_column not in columns:
            raise ValueError(
                f"no image column {image_column!r}; the columns are {columns}, "
                "pass the right one as image_column="
            )
        if not isinstance(dataset.features[image_column], datasets.Image):
            raise ValueError(
                f"column {image_column!r} holds {dataset.features[image_column]}, not images; "
                f"cast it first: dataset.cast_column({image_column!r}, datasets.Image())"
            )
        if text_column is None:
            text_column = next((name for name in CAPTION_KEYS if name in columns), None)
            if text_column is None:
                raise ValueError(
                    f"no caption column: looked for {CAPTION_KEYS}, the columns are {columns}; "
                    "pass the right one as text_column="
                )
        elif text_column not in columns:
            raise ValueError(
                f"no text column {text_column!r}; the columns are {columns}, "
                "pass the right one as text_column="
            )
        feature = dataset.features[text_column]
        if not (isinstance(feature, datasets.Value) and feature.dtype in _TEXT_DTYPES):
            raise ValueError(
                f"column {text_column!r} holds {feature}, not strings; "
                "pass a column of one caption string per row as text_column="
            )
        if len(dataset) == 0:
            raise ValueError("the dataset has no rows; pass one with captioned images")
        self.image_column = image_column
        self.text_column = text_column
        self._images = dataset.select_columns([image_column]).cast_column(
            image_column, datasets.Image(decode=False)
        )
        entries = [
            Entry(f"row {row}", row, clean_caption(caption))
            for row, caption in enumerate(dataset[text_column])
        ]
        self._scan(
            entries,
            origin=f"Hugging Face dataset (column {image_column!r})",
            fix=f"Fix: give every row a decodable {image_column!r} and a non-empty "
            f"{text_column!r}, or drop the rows listed above with dataset.filter.",
        )

    def _fetch(self, key: Path | int) -> ImageSource:
        value = self._images[key][self.image_column] or {}
        if value.get("path") and not value.get("bytes"):
            return Path(value["path"])
        if value.get("bytes") is None:
            raise ImageRejected("missing_file", "no image bytes or path in this row")
        return value["bytes"]
