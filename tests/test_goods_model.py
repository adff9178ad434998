"""The goods classifier shipped trained (rules/reference/goods-classifier.npz): what `cargoscreen reference
build goods-classifier` writes from the shipped inputs, loaded without scikit-learn or SciPy, answering
exactly as a classifier trained now, and left unused once an input changed."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cargoscreen import resources
from cargoscreen.cli import main
from cargoscreen.domain.goods_classifier import (MODEL_FILE, GoodsClassifier, TrainedModel, bundled_goods_classifier,
                                                 load_labelled, training_inputs, training_key)
from cargoscreen.domain.legal_lists import bundled_legal_lists
from cargoscreen.domain.reference import bundled_reference
from cargoscreen.validation import Submission

TESTS = Path(__file__).resolve().parent
REFERENCE = resources.rules_dir() / "reference"


def copy_of_the_inputs(folder: Path) -> Path:
    """The bundled reference folder without its model file (the code among the inputs stays where it is)."""
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns(MODEL_FILE), dirs_exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def trained():
    return GoodsClassifier.build(bundled_reference(), bundled_legal_lists())


def test_the_shipped_model_is_what_reference_build_writes_from_the_shipped_inputs(tmp_path):
    folder = copy_of_the_inputs(tmp_path)
    result = CliRunner().invoke(main, ["reference", "build", "goods-classifier", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert "trained over" in result.output
    with np.load(REFERENCE / MODEL_FILE, allow_pickle=False) as shipped, \
            np.load(tmp_path / MODEL_FILE, allow_pickle=False) as built:
        assert sorted(shipped.files) == sorted(built.files)
        for name in shipped.files:
            assert shipped[name].dtype == built[name].dtype and np.array_equal(shipped[name], built[name]), \
                f"{name} differs: rebuild it with `cargoscreen reference build goods-classifier`"
    assert TrainedModel.load(REFERENCE / MODEL_FILE, training_key(REFERENCE)) is not None


def every_description(corpus, validator) -> list[tuple[str, str | None]]:
    """Each description the repository has, with its declared code: the generated corpus's goods lines,
    the scenario set's, the labelled ones (declared and true codes)."""
    pairs = []
    for f in corpus:
        record = validator.validate(Submission(f.name, f.data)).record
        if record is not None:
            pairs += [(g.description, g.hs_code) for g in record.goods if g.description]
    for name in ("risky.csv", "decoys.csv"):
        with open(TESTS / "scenarios" / "data" / name, encoding="utf-8", newline="") as f:
            pairs += [(r["description"], r["hs"]) for r in csv.DictReader(f) if r["description"]]
    for r in load_labelled(TESTS / "data" / "goods-descriptions.csv"):
        pairs += [(r["description"], r["declared"]), (r["description"], r["heading"])]
    return list(dict.fromkeys(pairs))


def test_the_shipped_model_answers_as_a_model_trained_now(trained, corpus, validator):
    shipped = bundled_goods_classifier()
    assert shipped.model is not trained.model
    pairs = every_description(corpus, validator)
    assert len(pairs) > 2000
    for description, code in pairs:
        verdict = shipped.consistency(description, code)
        assert verdict == trained.consistency(description, code), description
        assert np.array_equal(shipped._analyse(description).scores, trained._analyse(description).scores)
        assert shipped.consistency(description, None) == trained.consistency(description, None)
        for heading, _ in verdict.proposed[:2]:
            assert shipped.subheading(description, heading) == trained.subheading(description, heading)
            assert shipped.matched_terms(description, heading) == trained.matched_terms(description, heading)


def test_loading_the_shipped_model_imports_neither_scikit_learn_nor_scipy():
    script = ("import sys; from cargoscreen.domain.goods_classifier import bundled_goods_classifier; "
              "c = bundled_goods_classifier(); assert c.propose('ladies cotton knitted t-shirts')[0][0] == '6109'; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_model_made_from_other_inputs_is_not_used(tmp_path):
    """An edited vocabulary (or nomenclature, legal list, training code) changes the key: the old file is
    ignored and the classifier is trained from what is there now."""
    folder = copy_of_the_inputs(tmp_path)
    CliRunner().invoke(main, ["reference", "build", "goods-classifier", "--out", str(folder)], catch_exceptions=False)
    reference, lists = bundled_reference(), bundled_legal_lists()
    assert TrainedModel.load(folder / MODEL_FILE, training_key(folder)) is not None
    assert "zorbulator" not in GoodsClassifier.bundled(reference, lists, folder)._vocab
    with (folder / "goods-vocabulary.csv").open("a", encoding="utf-8") as f:
        f.write("zorbulator,8479,,,,a test term\n")
    assert TrainedModel.load(folder / MODEL_FILE, training_key(folder)) is None
    classifier = GoodsClassifier.bundled(reference, lists, folder)
    assert "zorbulator" in classifier._vocab and classifier.propose("zorbulator")[0][0] == "8479"


def test_a_damaged_model_file_is_not_used(tmp_path):
    key = training_key(REFERENCE)
    (tmp_path / MODEL_FILE).write_bytes((REFERENCE / MODEL_FILE).read_bytes()[:5000])
    assert TrainedModel.load(tmp_path / MODEL_FILE, key) is None
    assert TrainedModel.load(tmp_path / "absent.npz", key) is None
