"""Datasets yielding ``(image, caption)``: image (3, R, R) float32 in [-1, 1], caption a str."""

from atelier.data.base import CaptionedImages, array_to_tensor, tensor_to_array, tensor_to_pil
from atelier.data.folder import ImageFolderDataset
from atelier.data.hf import HFDataset
from atelier.data.images import ImageLoadWarning, LoadReport

__all__ = [
    "CaptionedImages",
    "HFDataset",
    "ImageFolderDataset",
    "ImageLoadWarning",
    "LoadReport",
    "array_to_tensor",
    "tensor_to_array",
    "tensor_to_pil",
]
