"""`prepare`: the synthetic profile from nothing, idempotence, and the real profile's failures offline."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from autograder.data import flickr8k, stl10
from autograder.profiles.prepare import (
    NotPreparedError,
    PreparedPaths,
    _start_or_resume,
    prepare,
    prepared_manifest,
)
from autograder.profiles.profile import load_profile


def run_cli(*args, cache, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "PS7_CACHE": str(cache), "HF_HUB_OFFLINE": "1"},
    )


def test_prepared_synthetic_cache_has_the_real_formats(synthetic):
    paths = PreparedPaths(synthetic.cache_dir())
    manifest = prepared_manifest(synthetic)
    counts = synthetic.data["stl10"]
    images, labels = stl10.read_split(manifest["stl10_root"], "train")
    assert images.shape == (counts["train"], 3, 96, 96) and labels.min() >= 0 and labels.max() <= 9
    unlabeled, none = stl10.read_split(manifest["stl10_root"], "unlabeled", indices=[0, 5])
    assert unlabeled.shape == (2, 3, 96, 96) and none is None
    rows = flickr8k.read_captions(manifest["flickr8k_root"])
    assert len(rows) == 5 * synthetic.data["flickr8k"]["images"]
    crops = load_file(str(paths.stl10_images))
    assert set(crops) == {"train", "test", "unlabeled"}
    assert crops["test"].shape == (counts["test"], 3, 64, 64)
    assert "test" in load_file(str(paths.stl10_labels))  # labels live apart from the images
    pairs = json.loads(paths.clip_pairs.read_text())
    assert len(pairs["train"]) + len(pairs["val"]) == synthetic.data["flickr8k"]["images"]


def test_second_prepare_does_nothing(synthetic, capsys):
    started = time.perf_counter()
    manifest = prepare(synthetic)
    assert time.perf_counter() - started < 5
    assert capsys.readouterr().out == ""
    assert manifest == prepared_manifest(synthetic)


def test_a_changed_profile_is_not_taken_for_prepared(synthetic, tmp_path):
    changed = tmp_path / "synthetic.json"
    raw = json.loads(synthetic.path.read_text())
    raw["data"]["seed"] += 1
    changed.write_text(json.dumps(raw))
    with pytest.raises(NotPreparedError, match="changed since it was prepared"):
        prepared_manifest(load_profile(changed))


def test_unprepared_profile_says_which_command_prepares_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PS7_CACHE", str(tmp_path))
    with pytest.raises(NotPreparedError, match="python -m autograder prepare --profile synthetic"):
        prepared_manifest(load_profile("synthetic"))


def test_stl10_without_sources_fails_fast_saying_what_to_supply(tmp_path):
    started = time.perf_counter()
    result = run_cli("prepare", "--profile", "stl10", cache=tmp_path)
    assert result.returncode == 2
    assert "Flickr8k" in result.stderr and "--flickr8k" in result.stderr
    assert time.perf_counter() - started < 60


def test_stl10_offline_download_failure_names_the_url_and_the_option(tmp_path, synthetic):
    flickr_root = prepared_manifest(synthetic)["flickr8k_root"]
    result = run_cli("prepare", "--profile", "stl10", "--flickr8k", flickr_root, cache=tmp_path / "cache")
    assert result.returncode == 2
    assert "cannot download STL-10" in result.stderr
    assert "--stl10 PATH" in result.stderr
    left = [path.name for path in (tmp_path / "cache").rglob("*") if ".partial" in path.name]
    assert not left, f"a failed download left {left} in the cache"


def test_stl10_files_with_wrong_checksums_are_refused(tmp_path, synthetic):
    manifest = prepared_manifest(synthetic)
    result = run_cli(
        "prepare", "--profile", "stl10", "--stl10", manifest["stl10_root"], "--flickr8k", manifest["flickr8k_root"],
        cache=tmp_path / "cache",
    )
    assert result.returncode == 2
    assert "wrong checksum" in result.stderr and "train_X.bin" in result.stderr


def test_an_interrupted_prepare_resumes_but_a_changed_profile_starts_afresh(tmp_path):
    paths = PreparedPaths(tmp_path / "synthetic")
    _start_or_resume(paths, "version-1")
    step_output = paths.image_weights
    step_output.parent.mkdir(parents=True)
    step_output.write_bytes(b"weights of version 1")
    _start_or_resume(paths, "version-1")
    assert step_output.read_bytes() == b"weights of version 1"  # resumed: finished steps are kept
    _start_or_resume(paths, "version-2")
    assert not step_output.exists()  # another version: nothing stale is reused
    assert (paths.root / "fingerprint").read_text() == "version-2"


def test_real_backbones_from_local_copies_prepare_offline_and_say_so(tmp_path, synthetic, monkeypatch, capsys):
    """`--text-model PATH` and `--image-weights PATH`: the cache gets copies of exactly those, with the hub set
    offline by prepare itself (no network retries), which it says."""
    import torchvision

    from autograder.profiles.prepare import _real_backbones

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "")  # recorded, so that what prepare sets is undone after the test
        monkeypatch.delenv(name)
    state = torchvision.models.resnet50().state_dict()
    weights = tmp_path / "torch-hub" / "resnet50-11ad3fa6.pth"  # torchvision's own name for IMAGENET1K_V2
    weights.parent.mkdir()
    torch.save(state, weights)
    text_model = PreparedPaths(synthetic.cache_dir()).text_model  # a folder written by save_pretrained
    paths = PreparedPaths(tmp_path / "cache")
    paths.image_weights.parent.mkdir(parents=True)
    _real_backbones(load_profile("stl10"), paths, text_model=str(text_model), image_weights=str(weights.parent))
    printed = capsys.readouterr().out
    assert f"using the local text model {text_model}: the Hugging Face hub is set offline" in printed
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    copied = load_file(str(paths.image_weights))
    assert copied.keys() == state.keys() and torch.equal(copied["fc.weight"], state["fc.weight"])
    assert (paths.text_model / "config.json").read_text() == (text_model / "config.json").read_text()


def test_local_image_weights_that_are_not_resnet50_are_refused_saying_why(tmp_path, synthetic):
    from autograder.profiles.prepare import PrepareError, _image_state

    wrong = tmp_path / "small.pth"
    torch.save({"weight": torch.zeros(3)}, wrong)
    with pytest.raises(PrepareError, match=r"small.pth: not the weights of a torchvision ResNet50"):
        _image_state(load_profile("stl10"), str(wrong))
    with pytest.raises(PrepareError, match=r"no such file \(expected torchvision's resnet50-11ad3fa6.pth"):
        _image_state(load_profile("stl10"), str(tmp_path))


def test_a_second_prepare_of_one_cache_waits_for_the_first_then_finds_it_prepared(tmp_path):
    """The lock is held here, as a first prepare would hold it: the prepare started meanwhile says it waits and
    writes nothing; once the lock is free it prepares, and a complete cache results (the tokenizer included, which
    two interleaved prepares once lost)."""
    import fcntl

    lock_file = tmp_path / "public.lock"
    with open(lock_file, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = subprocess.Popen(
            [sys.executable, "-m", "autograder", "prepare", "--profile", "public"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PS7_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"},
        )
        first_line = waiting.stdout.readline()
        assert "waiting for another prepare" in first_line, first_line
        time.sleep(1)
        assert waiting.poll() is None and not (tmp_path / "public").exists()
    output, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, output
    assert "prepared in" in output
    assert (tmp_path / "public" / "backbones" / "text" / "tokenizer.json").is_file()
