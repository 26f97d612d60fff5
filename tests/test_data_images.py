"""Decoding, colour conversion, cropping and reporting in atelier.data.images."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from atelier.data.images import ImageRejected, LoadReport, load_rgb, square_pixels, to_rgb


def _encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _bands(values: list[float], dtype: type) -> np.ndarray:
    """One horizontal band of 4 rows per value, 4 pixels wide."""
    return np.repeat(np.array(values, dtype=dtype), 4)[:, None].repeat(4, axis=1)


def _palette_with_transparency() -> Image.Image:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # 16-bit: scaled by the format's range (x / 257), neither clipped nor min/max stretched.
        (Image.fromarray(_bands([0, 1000, 25700], np.uint16)), [0, 4, 100]),
        (Image.fromarray(_bands([0, 1000, 65535], np.int32)), [0, 4, 255]),
        (Image.fromarray(_bands([0.0, 0.5, 1.0], np.float32)), [0, 128, 255]),
        # Outside any format range (negative, or floats past 1): stretched over min..max.
        (Image.fromarray(_bands([-100, 0, 100], np.int32)), [0, 128, 255]),
        (Image.fromarray(_bands([2.0, 4.0, 6.0], np.float32)), [0, 128, 255]),
    ],
    ids=["I;16", "I", "F-unit", "I-signed", "F-wide"],
)
def test_high_bit_depth_is_rescaled_per_band(image: Image.Image, expected: list[int]) -> None:
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (12, 4, 3) and rgb.dtype == np.uint8
    assert rgb[::4, 0, 0].tolist() == expected
    assert (rgb == rgb[:, :, :1]).all(), "gray must stay gray in all three channels"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("LA", (4, 4), (0, 128)), (127, 127, 127)),
        (Image.new("RGBA", (4, 4), (0, 0, 255, 64)), (191, 191, 255)),
        (Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),
        (_palette_with_transparency(), (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("L", (4, 4), 77), (77, 77, 77)),
    ],
    ids=["LA", "RGBA-half", "RGBA-clear", "P-transparent", "CMYK", "L"],
)
def test_modes_convert_to_rgb_over_white(image: Image.Image, expected: tuple[int, ...]) -> None:
    rgb = np.asarray(to_rgb(image)).astype(int)
    assert rgb.shape == (4, 4, 3)
    assert np.abs(rgb - np.array(expected)).max() <= 1


def test_load_rgb_reports_source_mode_only_when_converted() -> None:
    _, mode = load_rgb(_encode(Image.new("RGB", (4, 4), (1, 2, 3))))
    assert mode is None
    image, mode = load_rgb(_encode(Image.new("LA", (4, 4), (9, 255))))
    assert mode == "LA" and image.mode == "RGB"


def test_load_rgb_refuses_formats_that_run_external_programs() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(ImageRejected) as rejected:
        load_rgb(eps)
    assert rejected.value.reason == "unreadable"


def test_too_large_is_rejected_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(Image.new("RGB", (40, 30)))

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded before the size check")

    with monkeypatch.context() as patch, pytest.raises(ImageRejected) as rejected:
        patch.setattr(ImageFile.ImageFile, "load", no_decoding)
        load_rgb(data, max_pixels=40 * 30 - 1)
    assert rejected.value.reason == "too_large"
    image, _ = load_rgb(data, max_pixels=40 * 30)
    assert image.size == (40, 30)


@pytest.mark.parametrize("size", [(60, 20), (20, 60)], ids=["wide", "tall"])
def test_square_pixels_keeps_the_center_of_the_shorter_side(size: tuple[int, int]) -> None:
    # Three stripes along the long side; only the middle (green) one survives the center crop.
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    third = max(width, height) // 3
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        if width > height:
            pixels[:, i * third : (i + 1) * third] = colour
        else:
            pixels[i * third : (i + 1) * third, :] = colour
    square = square_pixels(Image.fromarray(pixels), 10)
    assert square.shape == (10, 10, 3) and square.dtype == np.uint8
    inner = square[3:7, 3:7].astype(int)
    assert np.abs(inner - np.array([0, 255, 0])).max() <= 2


def test_square_pixels_upscales_small_images_without_flipping() -> None:
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    pixels[:, :2] = (255, 0, 0)
    pixels[:, 2:] = (0, 0, 255)
    square = square_pixels(Image.fromarray(pixels), 16)
    assert square.shape == (16, 16, 3)
    assert square[8, 1, 0] > 200 and square[8, 1, 2] < 50
    assert square[8, 14, 2] > 200 and square[8, 14, 0] < 50


def test_report_summary_caps_listed_names() -> None:
    report = LoadReport()
    for i in range(25):
        report.skip("unreadable", f"bad{i:02d}.png")
    report.convert("CMYK", "scan.jpg")
    summary = report.summary()
    assert "skipped 25" in summary and "bad19.png" in summary and "bad20.png" not in summary
    assert "and 5 more" in summary
    assert "converted 1 from CMYK to RGB: scan.jpg" in summary
    assert report.num_skipped == 25 and report.num_converted == 1
