"""Self-contained HTML reports: every image inlined as a base64 PNG, no external files."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

from PIL import Image

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 2px; text-align: center; font-size: 11px; }
img { image-rendering: pixelated; display: block; }
.pass { border: 3px solid #2a2; } .fail { border: 3px solid #c22; }
"""


def escape(text: object) -> str:
    return html.escape(str(text))


def image_tag(image: Image.Image, *, scale: int = 2, css: str = "", title: str = "") -> str:
    """An <img> holding ``image`` as an inline PNG, shown ``scale`` times larger."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    w, h = image.width * scale, image.height * scale
    return (
        f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" '
        f'class="{css}" title="{escape(title)}" alt="{escape(title)}">'
    )


def figure(image: Image.Image, caption: str, *, passed: bool | None = None, scale: int = 2) -> str:
    """An image with a caption; a green or red frame for a judge's pass or fail."""
    css = "" if passed is None else ("pass" if passed else "fail")
    mark = "" if passed is None else (" ✓" if passed else " ✗")
    tag = image_tag(image, scale=scale, css=css, title=caption)
    return f"<figure>{tag}<figcaption>{escape(caption)}{mark}</figcaption></figure>"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, sections: Sequence[str]) -> str:
    """A whole HTML document."""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title><style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
