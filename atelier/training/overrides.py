"""Recipe overrides: ``atelier train RECIPE key=value ...`` applied to a recipe's dataclasses.

Values are JSON (``null``, ``true``, ``[32,64]``) except for text fields, which take the text as
written; each is checked against its field's type, so ``train.max_steps=abc`` is refused naming
what ``max_steps`` takes rather than failing somewhere inside the run.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import replace
from typing import Any, Literal, TypeVar

from atelier.safeload import check_config_values

T = TypeVar("T")


def apply_overrides(config: T, overrides: list[str]) -> T:
    """``["train.max_steps=100", "unet.block_channels=[32,64]"]`` applied to ``config`` (a
    dataclass, say a recipe); a ValueError names an unknown field or a value of the wrong type.

    All overrides of one component are applied together, so a config is only validated in its
    final form (changing ``vae.groups`` and ``vae.block_channels`` at once is fine).
    """
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value (e.g. train.max_steps=100)")
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r} conflicts with another override")
        node[leaf] = raw
    return _apply(config, tree, "")


def _apply(obj: Any, tree: dict[str, Any], where: str) -> Any:
    if obj is None or not dataclasses.is_dataclass(obj):
        raise ValueError(f"override {where.rstrip('.')!r}: there is no config there to set")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    changes = {}
    for name, value in tree.items():
        if name not in names:
            raise ValueError(
                f"override {where + name!r}: {type(obj).__name__} has no field {name!r}; "
                f"valid: {', '.join(names)}"
            )
        if isinstance(value, dict):
            changes[name] = _apply(getattr(obj, name), value, f"{where}{name}.")
        else:
            changes[name] = _typed(value, hints[name], where + name)
            # The same bounds as a model folder's config: no depth of a million layers.
            check_config_values({name: changes[name]}, f"override {where + name}")
    return replace(obj, **changes)


def _typed(raw: str, annotation: Any, key: str) -> Any:
    """The override ``key=raw`` as a value of the field's type, or a ValueError saying the type."""
    value = _decoded(raw, annotation)
    typed = _as(value, annotation)
    if typed is _WRONG:
        raise ValueError(
            f"override {key}={raw}: {key} takes {_described(annotation, key)}, not {raw!r}"
        )
    return typed


_WRONG = object()


def _options(annotation: Any) -> tuple[list[Any], bool]:
    """The non-None types of ``annotation`` and whether it allows None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return [a for a in args if a is not type(None)], type(None) in args
    return [annotation], False


def _decoded(raw: str, annotation: Any) -> Any:
    """JSON, except that a text field takes the text as written (``name=123`` is "123")."""
    options, nullable = _options(annotation)
    if nullable and raw == "null":
        return None
    wants_text = options[0] is str or (
        typing.get_origin(options[0]) is Literal
        and all(isinstance(a, str) for a in typing.get_args(options[0]))
    )
    if wants_text:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _as(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (lists to tuples, ints to floats), or ``_WRONG``."""
    options, nullable = _options(annotation)
    if value is None:
        return None if nullable else _WRONG
    if len(options) != 1:
        return value
    kind = options[0]
    origin = typing.get_origin(kind)
    if origin is Literal:
        return value if value in typing.get_args(kind) else _WRONG
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, list):
            return _WRONG
        items = args[:1] * len(value) if args[1:] == (Ellipsis,) else args
        if len(items) != len(value):
            return _WRONG
        out = tuple(_as(v, t) for v, t in zip(value, items))
        return _WRONG if any(v is _WRONG for v in out) else out
    if kind is bool:
        return value if isinstance(value, bool) else _WRONG
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else _WRONG
    if kind is str:
        return value if isinstance(value, str) else _WRONG
    if dataclasses.is_dataclass(kind):
        return _WRONG  # a group of settings is set field by field
    return value


def _described(annotation: Any, key: str) -> str:
    """What the field ``key`` of type ``annotation`` takes, in words, with an example."""
    options, nullable = _options(annotation)
    kind = options[0] if len(options) == 1 else None
    origin = typing.get_origin(kind)
    if origin is Literal:
        text = "one of " + ", ".join(str(a) for a in typing.get_args(kind))
    elif origin is tuple:
        args = typing.get_args(kind)
        size = len(args) if args[1:] != (Ellipsis,) else None
        word, example = _ITEMS.get(args[0], ("items", "1"))
        count = f"{size} " if size else ""
        text = f"a list of {count}{word}, like [{','.join([example] * (size or 2))}]"
    elif dataclasses.is_dataclass(kind):
        text = f"settings of its own, each set by name ({key}.FIELD=VALUE)"
    else:
        words = {bool: "true or false", int: "an integer", float: "a number", str: "text"}
        text = words.get(kind, str(annotation))
    return f"{text} or null" if nullable else text


_ITEMS = {bool: ("true/false values", "true"), int: ("integers", "32"), float: ("numbers", "0.5")}
