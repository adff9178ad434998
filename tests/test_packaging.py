"""The package installs as a newcomer gets it: layout of the design card, data files inside a regular install."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_design_card_layout():
    for name in ("pipeline", "connectors", "xsd", "rules", "ops", "tests", "setup.py", "README.md", ".ci/run"):
        assert (ROOT / name).exists(), name


@pytest.mark.slow
def test_a_regular_install_finds_its_schemas_and_rules(tmp_path):
    """Built as a wheel and installed elsewhere: nothing may come from the checkout."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", "out", ".git", "*.egg-info", "__pycache__",
                                                                 ".pytest_cache", "build"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(source)], check=True)
    shutil.rmtree(source)  # the checkout is gone: data must come from the install
    probe = """
import cargoscreen, json
from cargoscreen import resources
from cargoscreen.config import Settings
from cargoscreen.generator import GeneratorSpec, generate
from cargoscreen.domain.goods_classifier import MODEL_FILE, TrainedModel, training_key
from cargoscreen.validation import FilingValidator, Submission
v = FilingValidator(Settings())
reference = resources.rules_dir() / "reference"
model = TrainedModel.load(reference / MODEL_FILE, training_key(reference))
f = next(generate(GeneratorSpec(count=1, seed=1, defect_rate=0, envelope_rate=0)))
print(json.dumps({"schemas": str(resources.schema_dir()), "rules": str(resources.rules_dir()),
                  "accepted": v.validate(Submission("x", f.data)).accepted, "trained model": model is not None}))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    report = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert report["schemas"].startswith(str(target)) and report["rules"].startswith(str(target))
    assert report["accepted"] is True
    assert report["trained model"] is True  # the shipped goods classifier, current in the install too


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "cargoscreen"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    for command in ("validate", "generate", "run", "demo"):
        assert command in out.stdout
