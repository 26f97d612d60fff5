"""Precision (fp32, bf16) and compiled networks (``pipelines/runtime.py``): validation, PNG records,
replay's tolerance for a compiled image, batch = singles under bf16, compiled against eager."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from atelier.cli import app
from atelier.diffusion.options import SamplingOptions
from atelier.kinds.registry import load_model
from atelier.pipelines import runtime
from atelier.pipelines.metadata import COMPILED_TOLERANCE, parse_a1111, read_params, save_png
from tests.pipelines.conftest import tiny_model

runner = CliRunner()
CPU = torch.device("cpu")
NATIVE_BF16 = runtime.bf16_unsupported(CPU) is None
needs_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason="this CPU lacks native bf16")
PROMPTS = ["a red circle", "three yellow circles", "a blue square above a green triangle",
           "a red circle", "a green triangle"]  # fmt: skip


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def pixels(images) -> list[np.ndarray]:
    return [np.asarray(im, dtype=np.int16) for im in images]


def test_precision_is_validated_naming_the_choices():
    with pytest.raises(ValueError, match="unknown precision 'fp16'; valid: fp32, bf16"):
        SamplingOptions(precision="fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        runtime.check_precision("fp64", CPU)
    assert SamplingOptions().precision == "fp32"
    assert SamplingOptions(precision="bf16").label().endswith("-bf16")


def test_bf16_is_refused_where_the_cpu_lacks_it(monkeypatch, tiny_model_dir, tmp_path):
    caps = {"architecture": "x86_64", "cpu_name": "Old Xeon", "avx512_f": True}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    why = runtime.bf16_unsupported(CPU)
    assert "Old Xeon" in why and "AVX-512 BF16 or AMX" in why
    with pytest.raises(ValueError, match="precision bf16 is refused here: .*use fp32"):
        runtime.check_precision("bf16", CPU)
    runtime.check_precision("fp32", CPU)
    model = tiny_model()
    with pytest.raises(ValueError, match="precision bf16 is refused"):
        model(["a red circle"], seeds=[0], options=SamplingOptions(precision="bf16", steps=1))
    result = run("generate", "a red circle", "--model", tiny_model_dir, "-o", tmp_path,
                 "--option", "precision=bf16")  # fmt: skip
    assert result.exit_code == 2 and "precision bf16 is refused here" in result.output
    caps["amx_bf16"] = True
    assert runtime.bf16_unsupported(CPU) is None


@needs_bf16
def test_bf16_batch_equals_singles_bit_for_bit_and_differs_from_fp32():
    model = tiny_model(sampler="dpmpp_2m_sde")
    bf16 = dataclasses.replace(model.defaults, precision="bf16")
    batch = pixels(model(PROMPTS, seeds=list(range(5)), options=bf16))
    singles = pixels(model([p], seeds=[k], options=bf16)[0] for k, p in enumerate(PROMPTS))
    assert all((a == b).all() for a, b in zip(batch, singles))
    calls: list[torch.dtype] = []
    hook = model.unet.conv_in.register_forward_hook(lambda m, i, out: calls.append(out.dtype))
    try:
        model(PROMPTS[:1], seeds=[0], options=bf16)
        model(PROMPTS[:1], seeds=[0])
    finally:
        hook.remove()
    assert set(calls) == {torch.bfloat16, torch.float32}  # bf16 only when asked


@needs_bf16
def test_bf16_is_recorded_in_the_png_and_replayed(tiny_installed, tiny_model_dir, tmp_path):
    common = ["a blue square above a green triangle", "--seed", "3", "--model", tiny_model_dir]
    plain = run("generate", *common, "-o", tmp_path / "fp32").stdout.strip().splitlines()[-1]
    result = run("generate", *common, "--option", "precision=bf16", "-o", tmp_path / "bf16")
    assert result.exit_code == 0, result.output
    bf16 = result.stdout.strip().splitlines()[-1]
    assert read_params(bf16).options["precision"] == "bf16"
    assert read_params(plain).options["precision"] == "fp32"
    assert parse_a1111(Image.open(bf16).text["parameters"])["Precision"] == "bf16"
    assert "Precision" not in Image.open(plain).text["parameters"]  # fp32: as every A1111 image
    again = run("replay", bf16)
    assert again.exit_code == 0 and "pixels match: " in again.output, again.output


def drawn(tmp_path, tiny_model_dir, *options: str):
    """A generated PNG's path, its parameters, and a function writing its pixels moved by
    ``shift`` levels at one value under other parameters, returning replay's result."""
    made = run("generate", "a red circle", "--seed", "1", "--model", tiny_model_dir, "-o",
               tmp_path, *options)  # fmt: skip
    path = made.stdout.strip().splitlines()[-1]
    original = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)

    def replayed(shift: int, record, name: str):
        moved = original.copy()
        moved[0, 0, 0] = moved[0, 0, 0] + shift if moved[0, 0, 0] < 128 else moved[0, 0, 0] - shift
        save_png(Image.fromarray(moved.astype(np.uint8)), tmp_path / name, record)
        return run("replay", tmp_path / name)

    return read_params(path), replayed


def as_compiled(params):
    return dataclasses.replace(params, extra={**params.extra, "runtime": "compiled"})


def test_replay_allows_the_compiled_tolerance_only_to_a_compiled_image(
    tiny_installed, tiny_model_dir, tmp_path
):
    params, replayed = drawn(tmp_path, tiny_model_dir)
    assert as_compiled(params).compiled and not params.compiled
    within = replayed(COMPILED_TOLERANCE, as_compiled(params), "within.png")
    assert within.exit_code == 0 and "within the compiled tolerance" in within.output
    assert "Runtime: compiled" in Image.open(tmp_path / "within.png").text["parameters"]
    beyond = replayed(COMPILED_TOLERANCE + 1, as_compiled(params), "beyond.png")
    assert beyond.exit_code == 1 and "beyond the compiled tolerance" in beyond.output
    eager = replayed(1, params, "eager.png")  # an eager image allows nothing
    assert eager.exit_code == 1 and "pixels differ (max |delta| 1)" in eager.output


@needs_bf16
def test_replay_does_not_judge_a_compiled_bf16_image_eager(tiny_installed, tiny_model_dir,
                                                           tmp_path):  # fmt: skip
    params, replayed = drawn(tmp_path, tiny_model_dir, "--option", "precision=bf16")
    result = replayed(1, as_compiled(params), "bf16.png")
    assert result.exit_code == 1 and "pixels cannot be checked" in result.output
    assert "with --compile" in result.output


def test_compile_is_lazy_and_a_lora_runs_eager(tiny_model_dir):
    from atelier.models.lora import LoRAConfig, LoRANetwork

    model = load_model(tiny_model_dir)
    assert model.runtime == "eager" and model.pipeline().network is model.unet
    assert model.compile() is model and model.runtime == "compiled"
    assert model.pipeline().network is model.compiled_unet  # compiles on its first call
    model.loras["concept"] = LoRANetwork.create(model.adapter_parts(), LoRAConfig(rank=2))
    model.loras["concept"].attach(1.0)
    assert model.pipeline().network is model.unet  # a compiled graph would not see its hooks
    model.loras["concept"].detach()
    assert model.pipeline().network is model.compiled_unet


def test_a_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="compiling needs a C\\+\\+ compiler"):
        tiny_model().compile()


def test_the_compile_cache_lives_under_atelier_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # so the test's setting is undone after
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    assert runtime.compile_cache() == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert runtime.compile_cache() == str(tmp_path / "mine")


@pytest.mark.compile
def test_compiled_images_are_eager_ones_within_the_tolerance_and_a_batch_its_singles():
    model = tiny_model(sampler="dpmpp_2m_sde")
    eager = pixels(model(PROMPTS[:3], seeds=[0, 1, 2]))
    model.compile()
    batch = pixels(model(PROMPTS[:3], seeds=[0, 1, 2]))
    singles = pixels(model([p], seeds=[k])[0] for k, p in enumerate(PROMPTS[:3]))
    assert all((a == b).all() for a, b in zip(batch, singles))
    assert max(int(np.abs(a - b).max()) for a, b in zip(batch, eager)) <= COMPILED_TOLERANCE


def test_the_server_compiles_the_diffusion_models_it_loads(tiny_model_dir):
    from atelier.serve.runners import Models

    name = str(tiny_model_dir)
    assert Models(default=name, compile=True).text_to_image(name).runtime == "compiled"
    assert Models(default=name).text_to_image(name).runtime == "eager"


def test_serve_compile_warms_before_serving_or_says_why_not(tiny_model_dir, tmp_path,
                                                            monkeypatch):  # fmt: skip
    import uvicorn

    from atelier.kinds.diffusion import Model

    served, warmed = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    monkeypatch.setattr(Model, "warm", lambda self, say: warmed.append(say(self.name)))
    args = ["serve", "--model", tiny_model_dir, "-o", tmp_path / "out", "--compile"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "compiling the UNet of" in result.output and "compiled in" in result.output
    assert (
        warmed and served[0].state.models.text_to_image(str(tiny_model_dir)).runtime == "compiled"
    )
    served[0].state.queue.close()
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    refused = run(*args)
    assert refused.exit_code == 2 and "cannot compile" in refused.output
    assert "needs a C++ compiler" in refused.output and len(served) == 1
