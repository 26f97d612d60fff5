"""What an error may say to a client: one short line, no absolute path, never the input back.

Every reply's error text (``detail`` strings, the ``msg`` of 422 items, a job's ``error``) goes
through :func:`public_message`: an absolute path, which would name the server's install folder
or home, becomes its last component, and a message is cut at :data:`MAX_MESSAGE_CHARS` (a
20 MB prompt must not come back as a 20 MB reply). 422 bodies keep FastAPI's documented shape,
``{"detail": [{"loc", "msg", "type"}]}``, without pydantic's ``input`` and ``ctx``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_MESSAGE_CHARS = 300
MAX_LOC_CHARS = 60

# A POSIX path from the root, or a Windows one from a drive, up to a quote, space or bracket. The
# look-behind skips relative paths ("out/serve") and the "//" of URLs.
_ABSOLUTE_PATH = re.compile(
    r"""(?<![\w.:/\\~-])(?:[A-Za-z]:)?(?:[/\\][^\s'"`/\\<>|:;,()\[\]{}]+)+[/\\]?"""
)


def _last_component(match: re.Match[str]) -> str:
    return re.split(r"[/\\]", match.group(0).rstrip("/\\"))[-1]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def public_message(text: str, *, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` fit for a reply: one line, absolute paths cut to their last component, at most
    ``limit`` characters."""
    line = " ".join(str(text).split())
    return _shorten(_ABSOLUTE_PATH.sub(_last_component, line), limit)


def problem(field: str, msg: str, kind: str = "value_error") -> dict[str, Any]:
    """One 422 item about a body field."""
    return {"loc": ["body", field], "msg": public_message(msg), "type": kind}


def public_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors (pydantic's or ours) as 422 items: ``loc``, ``msg`` and ``type`` only,
    each part short (a ``loc`` may hold a client's dict key)."""
    return [
        {
            "loc": [
                p if isinstance(p, int) else _shorten(str(p), MAX_LOC_CHARS)
                for p in error.get("loc", ())
            ],  # fmt: skip
            "msg": public_message(error.get("msg", "")),
            "type": _shorten(str(error.get("type", "value_error")), MAX_LOC_CHARS),
        }
        for error in errors
    ]
