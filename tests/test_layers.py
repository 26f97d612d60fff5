"""The architecture's arrows point down (bench/layers.py): lower layers never import higher ones,
training uses pipelines only for sample grids, CLI modules share no private helpers, and no
library module reads sys.argv."""

import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("layers", ROOT / "bench" / "layers.py")
layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layers)


def test_no_arrow_points_up():
    assert layers.problems() == []


def test_every_package_has_a_layer():
    packages = {layers.package(m) for m in layers.imports()}
    assert packages <= set(layers.RANK), packages - set(layers.RANK)


def test_the_check_finds_each_kind_of_problem(tmp_path):
    copy = tmp_path / "atelier"
    shutil.copytree(layers.ROOT, copy, ignore=shutil.ignore_patterns("weights", "*.safetensors"))
    (copy / "models" / "bad.py").write_text("from atelier.kinds.registry import load_model\n")
    (copy / "training" / "bad.py").write_text("from atelier.pipelines.editing import Editor\n")
    (copy / "cli" / "bad.py").write_text("from atelier.cli.errors import _private\n")
    (copy / "eval" / "bad.py").write_text("import sys\nCOMMAND = sys.argv[1:]\n")
    found = "\n".join(layers.problems(copy))
    assert "atelier.models.bad:1 imports atelier.kinds.registry: kinds is above models" in found
    assert "training uses pipelines only for sample grids" in found
    assert "another CLI module's private _private" in found
    assert "atelier.eval.bad reads sys.argv" in found
    assert len(layers.problems(copy)) == 4
