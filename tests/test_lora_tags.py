"""AUTOMATIC1111's <lora:NAME:WEIGHT> prompt syntax and the --lora NAME:WEIGHT flag."""

import pytest

from atelier.pipelines.lora_tags import parse_lora_spec, split_lora_tags


def test_tags_are_taken_out_with_their_weights():
    text, specs = split_lora_tags("a red sks <lora:cross:0.8> in the top left<lora:b>")
    assert text == "a red sks in the top left"
    assert specs == (("cross", 0.8), ("b", 1.0))


def test_a_prompt_without_tags_is_left_as_it_is():
    assert split_lora_tags("a  red circle ") == ("a  red circle ", ())


def test_flag_values():
    assert parse_lora_spec("cross:0.5") == ("cross", 0.5)
    assert parse_lora_spec("cross") == ("cross", 1.0)


@pytest.mark.parametrize("bad", ["<lora:../x:1>", "<lora:x:abc>", "<lora:x:nan>", "<lora:x:1",
                                 "<lora::1>", "<lora:x:100>"])  # fmt: skip
def test_malformed_tags_are_refused(bad):
    with pytest.raises(ValueError, match="LoRA|lora"):
        split_lora_tags(f"a red circle {bad}")
