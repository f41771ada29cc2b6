"""`prepare --profile P`: make everything a profile needs, once, into its cache folder.

Every step writes its output atomically (a temporary name, then a rename) and is skipped when the output
exists, so an interrupted prepare resumes and a finished one costs nothing. Downloads happen only here;
grading afterwards is offline. The cache layout is described by `PreparedPaths` (in `layout`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:  # Windows: a student's laptop runs `check`, which prepares the public profile
    fcntl = None

from autograder.data import flickr8k, stl10
from autograder.profiles.layout import NotPreparedError, PreparedPaths, prepared_manifest
from autograder.profiles.profile import Profile

CROP = 64
CLIP_IMAGE_SIZE = 64
TEXT_MAX_LENGTH = 64
STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"


class PrepareError(RuntimeError):
    """Something the profile needs is missing; the message says what and how to supply it."""


def _atomic_file(target: Path, write: Callable[[Path], None]) -> None:
    """`write` into a partial file that becomes `target` only when complete; a failure leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        write(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)


def _atomic_dir(target: Path, write: Callable[[Path], None]) -> None:
    """`write` into a partial folder that becomes `target` only when complete; a failure leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def _step(name: str, output: Path, run: Callable[[], None]) -> None:
    if output.exists():
        print(f"  {name}: cached")
        return
    started = time.perf_counter()
    print(f"  {name} ...", flush=True)
    run()
    print(f"  {name}: done in {time.perf_counter() - started:.1f} s", flush=True)


def prepare(
    profile: Profile,
    *,
    stl10_source: str | None = None,
    flickr8k_source: str | None = None,
    text_model: str | None = None,
    image_weights: str | None = None,
) -> dict:
    """Make the profile's cache; returns its manifest. Idempotent. A real profile takes its backbones from
    `text_model` (a folder `save_pretrained` wrote, or a hub snapshot) and `image_weights` (torchvision's
    checkpoint, a safetensors file, or a folder holding torchvision's checkpoint) when given, offline."""
    paths = PreparedPaths(profile.cache_dir())
    try:
        return prepared_manifest(profile)
    except NotPreparedError:
        pass
    with _one_prepare_at_a_time(paths):
        try:  # prepared by the prepare this one waited for
            return prepared_manifest(profile)
        except NotPreparedError:
            return _prepare(profile, paths, stl10_source, flickr8k_source, text_model, image_weights)


@contextlib.contextmanager
def _one_prepare_at_a_time(paths: PreparedPaths) -> Iterator[None]:
    """Two prepares of one cache (a TA starting `make grade` twice) would write into the same partial files, and
    could leave, say, a text model without its tokenizer: the second waits for the first. The kernel drops the
    lock of a prepare that dies. Without `fcntl` (Windows), prepares are not serialised."""
    lock_file = paths.root.with_name(paths.root.name + ".lock")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting for another prepare of {paths.root} to finish ...", flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _prepare(
    profile: Profile,
    paths: PreparedPaths,
    stl10_source: str | None,
    flickr8k_source: str | None,
    text_model: str | None,
    image_weights: str | None,
) -> dict:
    started = time.perf_counter()
    print(f"preparing profile {profile.name!r} in {paths.root}", flush=True)
    _start_or_resume(paths, profile.fingerprint())
    if profile.data["source"] == "synthetic":
        stl10_root, flickr8k_root = _synthetic_data(profile, paths)
        _synthetic_backbones(profile, paths, flickr8k_root)
    else:
        stl10_root, flickr8k_root = _real_data(profile, paths, stl10_source, flickr8k_source)
        _real_backbones(profile, paths, text_model=text_model, image_weights=image_weights)
    _tensors(profile, paths, stl10_root, flickr8k_root)
    manifest = {
        "profile": profile.name,
        "fingerprint": profile.fingerprint(),
        "stl10_root": str(stl10_root),
        "flickr8k_root": str(flickr8k_root),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _atomic_file(paths.manifest, lambda path: path.write_text(json.dumps(manifest, indent=2) + "\n"))
    print(f"profile {profile.name!r} prepared in {manifest['seconds']} s", flush=True)
    return manifest


def _start_or_resume(paths: PreparedPaths, fingerprint: str) -> None:
    """Resume an interrupted prepare of the same profile; start afresh when the profile or its code changed."""
    marker = paths.root / "fingerprint"
    if paths.root.exists() and (not marker.is_file() or marker.read_text() != fingerprint):
        print(f"  {paths.root} holds another version of this profile: starting afresh", flush=True)
        shutil.rmtree(paths.root)
    paths.root.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint)


def _synthetic_data(profile: Profile, paths: PreparedPaths) -> tuple[Path, Path]:
    from autograder.data import synthetic

    counts = profile.data["stl10"]
    seed = profile.data["seed"]
    stl10_root = paths.data / "stl10"
    _step(
        "synthetic STL-10",
        stl10_root,
        lambda: _atomic_dir(
            stl10_root,
            lambda partial: synthetic.generate_stl10(
                partial, seed, counts["train"], counts["test"], counts["unlabeled"]
            ),
        ),
    )
    flickr_root = paths.data / "flickr8k"
    images = profile.data["flickr8k"]["images"]
    _step(
        "synthetic Flickr8k",
        flickr_root,
        lambda: _atomic_dir(flickr_root, lambda partial: synthetic.generate_flickr8k(partial, seed + 1, images)),
    )
    return stl10_root, flickr_root


def _synthetic_backbones(profile: Profile, paths: PreparedPaths, flickr_root: Path) -> None:
    from autograder.data import synthetic
    from autograder.profiles import backbones

    image = profile.backbones["image"]
    pretraining = image.get("pretrain")

    def pretrain(partial: Path) -> None:
        if pretraining is None:  # random weights: for timing only (synthetic-full)
            model = backbones.build_resnet(backbones.ImageBackboneSpec(image["arch"], image["embedding_dim"]), None)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(partial))
            return
        task = pretraining.get("task", "shape")
        images, labels = synthetic.pretraining_split(profile.data["seed"] + 2, pretraining["images"], task)
        stats = backbones.pretrain_small_resnet(
            images,
            labels,
            partial,
            seed=profile.seed,
            epochs=pretraining["epochs"],
            classes=synthetic.PRETRAINING_TASKS[task],
        )
        print(f"    pretraining: train accuracy {stats['train_accuracy']:.3f} in {stats['seconds']:.0f} s")

    _step("image backbone", paths.image_weights, lambda: _atomic_file(paths.image_weights, pretrain))
    text = profile.backbones["text"]
    captions = [caption for _, caption in flickr8k.read_captions(flickr_root)]
    shape = {k: v for k, v in text.items() if k not in ("source", "pretrain")}

    def text_model(partial: Path) -> None:
        backbones.build_synthetic_text_model(partial, captions, seed=profile.seed, **shape)
        if text.get("pretrain") is None:  # random weights: for timing only, or the public checks
            return
        texts, targets = synthetic.attribute_texts(text["pretrain"]["texts"], profile.data["seed"] + 3)
        classes = tuple(synthetic.ATTRIBUTE_CLASSES.values())
        stats = backbones.pretrain_text_model(partial, texts, targets, classes, seed=profile.seed)
        print(f"    pretraining: final loss {stats['batch_losses'][-1]:.3f} in {stats['seconds']:.0f} s")

    _step("text model", paths.text_model, lambda: _atomic_dir(paths.text_model, text_model))


def _download(url: str, target: Path, what: str, how: str) -> Path:
    try:
        with urllib.request.urlopen(url, timeout=30) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {what}") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as error:
        target.unlink(missing_ok=True)
        raise PrepareError(f"cannot download {what} from {url} ({error}). {how}") from error
    return target


def _real_data(
    profile: Profile, paths: PreparedPaths, stl10_source: str | None, flickr8k_source: str | None
) -> tuple[Path, Path]:
    stl10_source = stl10_source or profile.data["stl10"].get("path")
    flickr8k_source = flickr8k_source or profile.data["flickr8k"].get("source")
    stl10_how = (
        "Supply the folder that contains stl10_binary/ with `prepare --stl10 PATH` (or data.stl10.path in "
        f"{profile.path}), or run prepare where {STL10_URL} can be reached."
    )
    flickr_how = (
        "Supply the Flickr8k folder (Images/ and captions.txt) or the course's zip URL with `prepare --flickr8k "
        f"PATH_OR_URL` (or data.flickr8k.source in {profile.path})."
    )
    if not flickr8k_source:
        raise PrepareError(f"no Flickr8k source is configured for profile {profile.name!r}. {flickr_how}")
    if stl10_source:
        stl10_root = Path(stl10_source).expanduser()
    else:
        stl10_root = paths.data / "stl10"

        def fetch(partial: Path) -> None:
            archive = _download(STL10_URL, partial.with_suffix(".tar.gz"), "STL-10", stl10_how)
            shutil.unpack_archive(archive, partial)
            archive.unlink()

        _step("STL-10 download", stl10_root, lambda: _atomic_dir(stl10_root, fetch))
    if not (stl10_root / "stl10_binary").is_dir():
        raise PrepareError(f"{stl10_root} does not contain stl10_binary/. {stl10_how}")
    print("  verifying STL-10 checksums ...", flush=True)
    wrong = stl10.verify_checksums(stl10_root)
    if wrong:
        raise PrepareError(f"STL-10 files missing or with the wrong checksum in {stl10_root}: {', '.join(wrong)}")

    if flickr8k_source.startswith(("http://", "https://")):
        flickr_root = paths.data / "flickr8k"

        def fetch_flickr(partial: Path) -> None:
            archive = _download(flickr8k_source, partial.with_suffix(".zip"), "Flickr8k", flickr_how)
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(partial)
            archive.unlink()

        _step("Flickr8k download", flickr_root, lambda: _atomic_dir(flickr_root, fetch_flickr))
    else:
        flickr_root = Path(flickr8k_source).expanduser()
    if not (flickr_root / "captions.txt").is_file():
        raise PrepareError(f"{flickr_root} does not contain captions.txt and Images/. {flickr_how}")
    return stl10_root, flickr_root


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def go_offline(reason: str) -> None:
    """Set the Hugging Face hub offline for this process, and say so: without it, a hub that cannot be reached
    costs minutes of retries before the local copy is used (142 s measured)."""
    if all(os.environ.get(name) == "1" for name in OFFLINE_VARIABLES):
        return
    os.environ.update({name: "1" for name in OFFLINE_VARIABLES})
    print(f"  {reason}: the Hugging Face hub is set offline (HF_HUB_OFFLINE=1), no network is tried", flush=True)


def _image_state(profile: Profile, source: str | None) -> dict[str, torch.Tensor]:
    """The ResNet50 weights: from `source` (a file, or a folder holding torchvision's checkpoint by its own
    name), else through torchvision, which downloads them once into its hub cache."""
    import torchvision

    weights = torchvision.models.ResNet50_Weights[profile.backbones["image"]["weights"]]
    checkpoint = weights.url.rsplit("/", 1)[-1]
    if source is None:
        try:
            return weights.get_state_dict(progress=True)
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            raise PrepareError(
                f"cannot fetch the ResNet50 {weights.name} weights ({error}); run prepare once with network, give "
                f"the file with `prepare --image-weights PATH`, or put {checkpoint} in torch's hub cache "
                "(TORCH_HOME)/hub/checkpoints/"
            ) from error
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / checkpoint
    if not path.is_file():
        raise PrepareError(f"--image-weights {source}: no such file (expected torchvision's {checkpoint} or a file)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:  # torchvision's checkpoint is a pickle: tensors only, never arbitrary objects
            state = torch.load(path, map_location="cpu", weights_only=True)
        torchvision.models.resnet50().load_state_dict(state)
    except Exception as error:  # torch's and safetensors' own errors: not a checkpoint, other layers, ...
        raise PrepareError(f"--image-weights {path}: not the weights of a torchvision ResNet50 ({error})") from None
    return state


def _real_backbones(
    profile: Profile, paths: PreparedPaths, *, text_model: str | None = None, image_weights: str | None = None
) -> None:
    """Fetch the pretrained backbones once through their libraries, or take the local copies given, then keep
    offline copies in the cache."""
    if text_model is not None:
        go_offline(f"using the local text model {text_model}")
    from transformers import AutoModel, AutoTokenizer

    def resnet(partial: Path) -> None:
        state = _image_state(profile, image_weights)
        save_file({k: v.contiguous() for k, v in state.items()}, str(partial))

    def distilbert(partial: Path) -> None:
        name = profile.backbones["text"]["name"] if text_model is None else str(Path(text_model).expanduser())
        try:
            AutoTokenizer.from_pretrained(name, local_files_only=text_model is not None).save_pretrained(partial)
            AutoModel.from_pretrained(name, local_files_only=text_model is not None).save_pretrained(partial)
        except OSError as error:
            how = (
                "give a folder that `save_pretrained` wrote, or a hub snapshot of it"
                if text_model is not None
                else "run prepare once with network, give a local copy with `prepare --text-model PATH`, or fill "
                "the Hugging Face cache (HF_HOME) with it and set HF_HUB_OFFLINE=1"
            )
            raise PrepareError(f"cannot load {name} ({error}); {how}") from error

    _step("image backbone", paths.image_weights, lambda: _atomic_file(paths.image_weights, resnet))
    _step("text model", paths.text_model, lambda: _atomic_dir(paths.text_model, distilbert))


def _read_cropped(
    root: Path, split: str, count: int | None, chunk: int = 5000
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Centre crops in chunks, so that the 2.7 GB unlabeled file never sits in memory whole."""
    total = (root / "stl10_binary" / f"{split}_X.bin").stat().st_size // stl10.IMAGE_BYTES
    count = total if count is None else min(count, total)
    offset = (96 - CROP) // 2
    images, labels = [], []
    for start in tqdm(range(0, count, chunk), desc=f"crop {split}", leave=False):
        batch, batch_labels = stl10.read_split(root, split, indices=range(start, min(start + chunk, count)))
        images.append(batch[..., offset : offset + CROP, offset : offset + CROP].contiguous())
        if batch_labels is not None:
            labels.append(batch_labels)
    return torch.cat(images), (torch.cat(labels) if labels else None)


def _tensors(profile: Profile, paths: PreparedPaths, stl10_root: Path, flickr_root: Path) -> None:
    def stl10_tensors(partial: Path) -> None:
        images, labels = {}, {}
        for split in ("train", "test", "unlabeled"):
            count = profile.data["stl10"].get("cached_unlabeled") if split == "unlabeled" else None
            images[split], split_labels = _read_cropped(stl10_root, split, count)
            if split_labels is not None:
                labels[split] = split_labels
        save_file(labels, str(paths.stl10_labels))
        save_file(images, str(partial))

    def clip_tensors(partial: Path) -> None:
        pairs = flickr8k.one_caption_per_image(flickr8k.read_captions(flickr_root))
        train, val = flickr8k.train_val_split(pairs, val_fraction=0.2, seed=42)
        images = {
            "train": flickr8k.load_images(flickr_root, [name for name, _ in train], size=CLIP_IMAGE_SIZE),
            "val": flickr8k.load_images(flickr_root, [name for name, _ in val], size=CLIP_IMAGE_SIZE),
        }
        paths.clip_pairs.write_text(json.dumps({"train": train, "val": val}))
        save_file(images, str(partial))

    def text_features(partial: Path) -> None:
        from autograder.profiles.backbones import load_text_model
        from autograder.profiles.text_cache import TextFeatureCache

        tokenizer, model = load_text_model(paths.text_model)
        captions = [caption for _, caption in flickr8k.read_captions(flickr_root)]
        TextFeatureCache.build(tokenizer, model, captions, max_length=TEXT_MAX_LENGTH).save(partial)

    _step("STL-10 tensors", paths.stl10_images, lambda: _atomic_file(paths.stl10_images, stl10_tensors))
    _step("Flickr8k tensors", paths.clip_images, lambda: _atomic_file(paths.clip_images, clip_tensors))
    _step("text features", paths.text_features, lambda: _atomic_file(paths.text_features, text_features))
