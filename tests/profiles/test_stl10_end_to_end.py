"""`prepare --profile stl10` then `grade` of the reference, end to end, on small real-format stand-ins of every file.

The real files cannot exist here (STL-10 is 2.6 GB, Flickr8k and the pretrained weights are downloads), so the
test writes stand-ins in their real formats: STL-10's binary layout (`stl10_binary/*_X.bin`, `*_y.bin`,
`class_names.txt`), Flickr8k's `Images/*.jpg` with the Kaggle `captions.txt`, a torchvision ResNet50 checkpoint
(random weights) and a folder `save_pretrained` wrote for a small DistilBERT; they are given to prepare as a TA
gives local copies (`--stl10`, `--flickr8k`, `--image-weights`, `--text-model`). One thing is faked, and only in
this process: STL-10's md5 check, which stand-ins cannot pass. The profile is `stl10`'s own file with small
grading budgets and the small text model's width; its thresholds are the problem set's, which random data does
not reach, so the accuracy tests may fail, with their verdict on what training reached, and every other test must
pass.
`bench/stl10_prepare.py` and `bench/real_sizes.py --profile stl10` run the same path at the real sizes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torchvision
from safetensors.torch import save_file

from autograder.assignment.build import REFERENCE_NOTEBOOK
from autograder.assignment.source import REPO_ROOT
from autograder.data import flickr8k, stl10, synthetic
from autograder.grading import grade
from autograder.profiles import backbones
from autograder.profiles.layout import prepared_manifest
from autograder.profiles.prepare import OFFLINE_VARIABLES, prepare
from autograder.profiles.profile import load_profile

TEXT_DIM = 32
ACCURACY_TESTS = {"7.1.3.3", "7.1.4.4", "7.1.4.5", "7.2.2.6"}  # each judges an accuracy against a threshold


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, Path]:
    stl10_root, flickr_root = tmp_path / "stl10", tmp_path / "flickr8k"
    synthetic.generate_stl10(stl10_root, seed=5, n_train=40, n_test=40, n_unlabeled=60)
    synthetic.generate_flickr8k(flickr_root, seed=6, n_images=20)
    text_model = tmp_path / "distilbert"
    captions = [caption for _, caption in flickr8k.read_captions(flickr_root)]
    backbones.build_synthetic_text_model(text_model, captions, seed=0, dim=TEXT_DIM)
    weights = tmp_path / "resnet50.safetensors"
    save_file({k: v.contiguous() for k, v in torchvision.models.resnet50().state_dict().items()}, str(weights))
    return {"stl10": stl10_root, "flickr8k": flickr_root, "text_model": text_model, "image_weights": weights}


def _small_stl10(folder: Path) -> Path:
    raw = json.loads(load_profile("stl10").path.read_text())
    raw["data"]["stl10"]["cached_unlabeled"] = 60
    raw["backbones"]["text"]["dim"] = TEXT_DIM
    raw["grading_budgets"] = {"ae_epochs": 8, "probe_epochs": 2, "clip_epochs": 1, "unlabeled_subset": 60,
                              "batch_size": 16}
    path = folder / "stl10.json"  # stl10's own name: its cache folder and messages are the real profile's
    path.write_text(json.dumps(raw))
    return path


def test_prepare_stl10_from_local_copies_then_grade_the_reference(stand_ins, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PS7_CACHE", str(tmp_path / "cache"))
    for variable in OFFLINE_VARIABLES:  # as on a TA's machine; prepare sets them itself, restored after the test
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(stl10, "verify_checksums", lambda root: [])  # the one fake: see the module docstring
    profile = load_profile(_small_stl10(tmp_path))
    prepare(
        profile,
        stl10_source=str(stand_ins["stl10"]),
        flickr8k_source=str(stand_ins["flickr8k"]),
        text_model=str(stand_ins["text_model"]),
        image_weights=str(stand_ins["image_weights"]),
    )
    assert "the Hugging Face hub is set offline" in capsys.readouterr().out
    assert prepared_manifest(profile)["stl10_root"] == str(stand_ins["stl10"])  # read in place, not copied

    results = grade(REPO_ROOT / REFERENCE_NOTEBOOK, tmp_path / "results.json", profile=str(profile.path))
    assert results.grader_error is None
    assert len(results.tests) == 36 and results.max_score == pytest.approx(10)
    for test in results.tests:
        if test.number in ACCURACY_TESTS and test.score < test.max_score:
            verdict = test.output.startswith("expected") and "did not finish" not in test.output
            assert verdict, (test.number, test.output)  # a judgement of what training reached, not a breakdown
        else:
            assert test.score == pytest.approx(test.max_score), (test.number, test.output)
