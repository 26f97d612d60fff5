"""Read a shapes-world prompt into its structured :class:`SceneSpec`.

The grammar, informally (``?`` optional, ``|`` alternatives)::

    prompt   := prefix? item ((',' 'and'? | 'and') item)*
    prefix   := ('a' | 'an') picture ('of' | 'with' | 'showing') | 'there' ('is' | 'are')
    item     := group position? (relation group position?)?
    group    := quantity? size? colour shape                   # plural shape after a count > 1
    quantity := article | (article | 'one')? 'single' | 'exactly'? count | 'a' 'pair' 'of'
    count    := 'one' | 'two' | 'three' | 'four' | '1' | '2' | '3' | '4'
    position := ('in' | 'at' | 'on') 'the'? place ('corner' | 'side')?
    relation := left_of | right_of | above | below | beside
    left_of  := 'left of' | ('to' | 'on') 'the' 'left' 'side'? 'of'     # right_of likewise
    above    := 'above' | 'over' | 'on top of'
    below    := 'below' | 'under' | 'beneath' | 'underneath'
    beside   := 'next to' | 'beside'

Synonyms: 'little' is small, 'big' is large, 'disc' is circle, 'upper' / 'lower' are top /
bottom, 'centre' / 'middle' are center.

Meanings. 'a single' is one object and 'a pair of' two. 'exactly' adds nothing: scoring is strict,
so every count is exact already. 'next to' and 'beside' name no side, so they become the relation
``beside``: left of or right of (:func:`atelier.shapes.world.relation_holds`). Words the world has
no meaning for (depth as in 'behind', 'in front of'; vague counts as in 'a couple of', 'several';
counts above four) are unknown words.

Every word must be in the world's vocabulary; an unknown word raises :class:`UnknownWordError`
naming it, so a prompt about a "hexagon" fails loudly instead of being half understood.
"""

from __future__ import annotations

import re

from atelier.shapes.world import (
    COLORS,
    COUNT_WORDS,
    POSITION_WORDS,
    Cell,
    ObjectSpec,
    Relation,
    RelationName,
    SceneSpec,
)

_SHAPE_WORDS = {
    "circle": "circle", "circles": "circle", "disc": "circle", "discs": "circle",
    "square": "square", "squares": "square",
    "triangle": "triangle", "triangles": "triangle",
}  # fmt: skip
_SIZE_WORDS = {"small": "small", "little": "small", "large": "large", "big": "large"}
_ARTICLES = {"a", "an", "the"}
_COUNTS = {w: i + 1 for i, w in enumerate(COUNT_WORDS)} | {str(i + 1): i + 1 for i in range(4)}
_PLACE_SYNONYMS = {"upper": "top", "lower": "bottom", "centre": "center", "middle": "center"}
_PLACES = {words: cell for cell, words in POSITION_WORDS.items()}
_PREFIX_NOUNS = {"picture", "image", "drawing", "photo", "render", "scene"}
# Relation phrases, longest first so "to the left of" wins over "left of".
_RELATION_PHRASES: list[tuple[tuple[str, ...], RelationName]] = sorted(
    [
        (("left", "of"), "left_of"), (("to", "the", "left", "of"), "left_of"),
        (("on", "the", "left", "of"), "left_of"), (("to", "the", "left", "side", "of"), "left_of"),
        (("on", "the", "left", "side", "of"), "left_of"),
        (("right", "of"), "right_of"), (("to", "the", "right", "of"), "right_of"),
        (("on", "the", "right", "of"), "right_of"),
        (("to", "the", "right", "side", "of"), "right_of"),
        (("on", "the", "right", "side", "of"), "right_of"),
        (("above",), "above"), (("over",), "above"), (("on", "top", "of"), "above"),
        (("below",), "below"), (("under",), "below"), (("beneath",), "below"),
        (("underneath",), "below"),
        (("next", "to"), "beside"), (("beside",), "beside"),
    ],
    key=lambda p: -len(p[0]),
)  # fmt: skip

VOCABULARY: frozenset[str] = frozenset(
    set(COLORS)
    | set(_SHAPE_WORDS)
    | set(_SIZE_WORDS)
    | _ARTICLES
    | set(_COUNTS)
    | set(_PLACE_SYNONYMS)
    | {w for words in _PLACES for w in words.split()}
    | {w for phrase, _ in _RELATION_PHRASES for w in phrase}
    | _PREFIX_NOUNS
    | {
        "in",
        "at",
        "on",
        "corner",
        "side",
        "and",
        "of",
        "with",
        "showing",
        "single",
        "exactly",
        "pair",
        "there",
        "is",
        "are",
        ",",
    }
)


class PromptError(ValueError):
    """A prompt the shapes world cannot understand; the message names the problem."""


class UnknownWordError(PromptError):
    """A word outside the shapes world's vocabulary."""

    def __init__(self, word: str, prompt: str) -> None:
        self.word = word
        super().__init__(
            f"unknown word {word!r} in prompt {prompt!r}: the shapes world knows colours "
            f"({', '.join(COLORS)}), shapes (circle, square, triangle), sizes (small, large), "
            f"counts (one to four, 1 to 4), positions (top left ... bottom right) and relations "
            f"(left of, right of, above, below, next to)"
        )


def tokenize(prompt: str) -> list[str]:
    """Lower-case words, numbers and commas; hyphens split words ("top-left"), final stops are
    dropped."""
    text = prompt.lower().replace("-", " ").strip().rstrip(".!")
    tokens = re.findall(r"[a-z]+|[0-9]+|,|\S", text)
    for tok in tokens:
        if tok not in VOCABULARY:
            raise UnknownWordError(tok, prompt)
    return tokens


class _Parser:
    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.toks = tokenize(prompt)
        self.i = 0

    def peek(self, k: int = 0) -> str | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def at(self, *words: str) -> bool:
        return tuple(self.toks[self.i : self.i + len(words)]) == words

    def fail(self, expected: str) -> PromptError:
        got = self.peek()
        where = f"at {got!r} (word {self.i + 1})" if got is not None else "at the end"
        return PromptError(f"expected {expected} {where} in prompt {self.prompt!r}")

    def prefix(self) -> None:
        if self.peek() in ("a", "an") and self.peek(1) in _PREFIX_NOUNS:
            if self.peek(2) not in ("of", "with", "showing"):
                raise self.fail("'of' or 'with' after the picture word")
            self.i += 3
        elif self.at("there", "is") or self.at("there", "are"):
            self.i += 2

    def quantity(self) -> int:
        """How many objects the group names: one unless a count or 'a pair of' says otherwise."""
        if self.at("a", "pair", "of"):
            self.i += 3
            return 2
        if self.peek() in _ARTICLES | {"one"} and self.peek(1) == "single":
            self.i += 1
        if self.peek() == "single":
            self.i += 1
            return 1
        exactly = self.peek() == "exactly"
        self.i += exactly
        if self.peek() in _COUNTS:
            self.i += 1
            return _COUNTS[self.toks[self.i - 1]]
        if exactly:
            raise self.fail("a count (one to four) after 'exactly'")
        if self.peek() in _ARTICLES:
            self.i += 1
        return 1

    def group(self) -> tuple[int, ObjectSpec]:
        count = self.quantity()
        size = _SIZE_WORDS.get(self.peek() or "")
        if size:
            self.i += 1
        color = self.peek()
        if color not in COLORS:
            raise self.fail("a colour (" + ", ".join(COLORS) + ")")
        self.i += 1
        shape = _SHAPE_WORDS.get(self.peek() or "")
        if shape is None:
            raise self.fail("a shape (circle, square, triangle)")
        self.i += 1
        return count, ObjectSpec(color, shape, size)

    def position(self) -> Cell | None:
        if self.peek() not in ("in", "at", "on"):
            return None
        j = self.i + 1 + (self.peek(1) == "the")
        words = [_PLACE_SYNONYMS.get(w, w) for w in self.toks[j : j + 2]]
        for n in (2, 1):
            place = " ".join(words[:n])
            if len(words) >= n and place in _PLACES:
                end = j + n
                if self.toks[end : end + 1] == ["of"] or self.toks[end : end + 2] == ["side", "of"]:
                    return None  # "on the left (side) of": a relation
                if end < len(self.toks) and self.toks[end] in ("corner", "side"):
                    end += 1
                self.i = end
                return _PLACES[place]
        return None

    def relation(self) -> RelationName | None:
        for phrase, name in _RELATION_PHRASES:
            if self.at(*phrase):
                self.i += len(phrase)
                return name
        return None

    def separator(self) -> bool:
        if self.peek() == ",":
            self.i += 1
            if self.peek() == "and":
                self.i += 1
            return True
        if self.peek() == "and":
            self.i += 1
            return True
        return False

    def placed_group(self, objects: list[ObjectSpec]) -> tuple[int, int]:
        """Parse a group and its optional position; append its objects; return (first, count)."""
        count, obj = self.group()
        cell = self.position()
        if cell is not None:
            if count > 1:
                raise PromptError(
                    f"a position is given to {count} objects at once in {self.prompt!r}; "
                    "name each object with its own position"
                )
            obj = ObjectSpec(obj.color, obj.shape, obj.size, cell)
        first = len(objects)
        objects.extend([obj] * count)
        return first, count

    def parse(self) -> SceneSpec:
        if not self.toks:
            raise PromptError("the prompt is empty; describe 1 to 4 objects, e.g. 'a red circle'")
        self.prefix()
        objects: list[ObjectSpec] = []
        relations: list[Relation] = []
        while True:
            first, count = self.placed_group(objects)
            name = self.relation()
            if name is not None:
                other, other_count = self.placed_group(objects)
                if count > 1 or other_count > 1:
                    raise PromptError(
                        f"a relation joins single objects, not groups, in {self.prompt!r}"
                    )
                relations.append(Relation(first, name, other))
            if self.peek() is None:
                break
            if not self.separator():
                raise self.fail("',' or 'and' between objects")
        if len(objects) > 4:
            raise PromptError(
                f"the prompt asks for {len(objects)} objects; a scene holds 1 to 4: {self.prompt!r}"
            )
        try:
            return SceneSpec(tuple(objects), tuple(relations))
        except ValueError as err:
            raise PromptError(f"{err} (prompt {self.prompt!r})") from None


def parse_prompt(prompt: str) -> SceneSpec:
    """The structured spec of a shapes-world prompt; raises :class:`PromptError` if it has none."""
    return _Parser(prompt).parse()
