"""The synthetic stand-in data: deterministic, in the real formats, balanced, honestly captioned, and not
separable by mean colour."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autograder.data import flickr8k, stl10, synthetic

STL10_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin", "class_names.txt")


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_render_images_is_deterministic() -> None:
    labels = np.arange(20) % 10
    a, captions_a = synthetic.render_images(labels, seed=7)
    b, captions_b = synthetic.render_images(torch.from_numpy(labels), seed=7)
    c, _ = synthetic.render_images(labels, seed=8)
    assert a.dtype == torch.uint8 and a.shape == (20, 3, 96, 96)
    assert torch.equal(a, b) and captions_a == captions_b
    assert not torch.equal(a, c)
    assert synthetic.render_images(labels[:3], seed=7, size=128)[0].shape == (3, 3, 128, 128)


def test_render_images_rejects_unknown_classes() -> None:
    with pytest.raises(ValueError, match="0..9"):
        synthetic.render_images(np.array([0, 10]), seed=0)


def test_generate_stl10_is_deterministic_and_readable(tmp_path: Path) -> None:
    synthetic.generate_stl10(tmp_path / "a", seed=3, n_train=40, n_test=30, n_unlabeled=25)
    synthetic.generate_stl10(tmp_path / "b", seed=3, n_train=40, n_test=30, n_unlabeled=25)
    synthetic.generate_stl10(tmp_path / "c", seed=4, n_train=40, n_test=30, n_unlabeled=25)
    first = digests(tmp_path / "a")
    assert sorted(first) == sorted(STL10_FILES)
    assert first == digests(tmp_path / "b")
    changed = digests(tmp_path / "c")
    assert all(first[name] != changed[name] for name in STL10_FILES if name.endswith(".bin"))

    train, train_labels = stl10.read_split(tmp_path / "a", "train")
    test, test_labels = stl10.read_split(tmp_path / "a", "test")
    unlabeled, none = stl10.read_split(tmp_path / "a", "unlabeled")
    assert train.shape == (40, 3, 96, 96) and test.shape == (30, 3, 96, 96) and unlabeled.shape[0] == 25
    assert none is None and train_labels is not None and test_labels is not None
    assert torch.bincount(train_labels, minlength=10).tolist() == [4] * 10
    assert torch.bincount(test_labels, minlength=10).tolist() == [3] * 10
    # Classes are shuffled, not written in blocks.
    assert train_labels[:10].tolist() != list(range(10))
    names = (tmp_path / "a" / "stl10_binary" / "class_names.txt").read_text().splitlines()
    assert tuple(names) == synthetic.CLASS_NAMES


def test_splits_use_independent_streams(tmp_path: Path) -> None:
    synthetic.generate_stl10(tmp_path / "small", seed=5, n_train=20, n_test=10, n_unlabeled=10)
    synthetic.generate_stl10(tmp_path / "big", seed=5, n_train=20, n_test=10, n_unlabeled=50)
    for split in ("train", "test"):
        assert torch.equal(stl10.read_split(tmp_path / "small", split)[0], stl10.read_split(tmp_path / "big", split)[0])
    pretrain, pretrain_labels = synthetic.pretraining_split(5, 20)
    assert not torch.equal(pretrain, stl10.read_split(tmp_path / "small", "train")[0])
    again, again_labels = synthetic.pretraining_split(5, 20)
    assert torch.equal(pretrain, again) and torch.equal(pretrain_labels, again_labels)
    assert pretrain.dtype == torch.uint8 and pretrain.shape == (20, 3, 96, 96)
    assert pretrain_labels.dtype == torch.int64 and torch.bincount(pretrain_labels).tolist() == [2] * 10


def test_the_colour_pretraining_task_labels_the_same_images_by_their_objects_colour() -> None:
    """Same stream, same images; the label is the object's colour, read back here from the pixels: the border is
    background, and the object's colour is the palette colour nearest most of the pixels far from the border's."""
    shapes, shape_labels = synthetic.pretraining_split(5, 60)
    images, colour_labels = synthetic.pretraining_split(5, 60, task="colour")
    assert torch.equal(images, shapes) and not torch.equal(colour_labels, shape_labels)
    assert colour_labels.dtype == torch.int64 and int(colour_labels.max()) < synthetic.PRETRAINING_TASKS["colour"]
    palette = torch.tensor(list(synthetic.PALETTE.values()), dtype=torch.float32)
    read = []
    for image in images.float():
        border = torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1).T
        pixels = image.flatten(1).T
        background = border.median(dim=0).values
        far = pixels[(pixels - background).norm(dim=1) > 60]
        read.append(int(torch.cdist(far, palette).argmin(dim=1).mode().values))
    assert (torch.tensor(read) == colour_labels).float().mean() > 0.9, (read, colour_labels.tolist())
    with pytest.raises(ValueError, match="unknown pretraining task 'texture'"):
        synthetic.pretraining_split(5, 4, task="texture")


def test_generator_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="distractor_fraction"):
        synthetic.generate_stl10(tmp_path, seed=0, n_train=10, n_test=10, n_unlabeled=10, distractor_fraction=2)
    with pytest.raises(ValueError, match="'n_unlabeled': 0"):
        synthetic.generate_stl10(tmp_path, seed=0, n_train=10, n_test=10, n_unlabeled=0)
    with pytest.raises(ValueError, match="n_images"):
        synthetic.generate_flickr8k(tmp_path, seed=0, n_images=0)
    synthetic.generate_stl10(tmp_path, seed=0, n_train=10, n_test=10, n_unlabeled=12, distractor_fraction=1.0)
    assert stl10.read_split(tmp_path, "unlabeled")[0].shape[0] == 12


def nearest_palette(rgb: np.ndarray, names: tuple[str, str]) -> str:
    return min(names, key=lambda name: float(np.abs(np.array(synthetic.PALETTE[name]) - rgb).sum()))


def test_captions_describe_what_is_drawn() -> None:
    labels = np.array([0, 1] * 15)  # circles (solid centre) and rings (hollow centre)
    images, captions = synthetic.render_images(labels, seed=11)
    for label, image, caption in zip(labels, images.numpy().astype(float), captions, strict=True):
        shape = "circle" if label == 0 else "ring"
        words = caption.split()
        fg = words[words.index(shape) - 1]
        bg = words[words.index("background") - 1]
        assert fg in synthetic.PALETTE and bg in synthetic.PALETTE and fg != bg, caption
        centre = image[:, 46:50, 46:50].mean(axis=(1, 2))
        corner = image[:, :4, :4].mean(axis=(1, 2))
        # The circle's centre shows its colour, the ring's centre the background; the corner is background.
        assert nearest_palette(centre, (fg, bg)) == (fg if label == 0 else bg), caption
        assert nearest_palette(corner, (fg, bg)) == bg, caption


def test_every_class_has_its_own_words() -> None:
    labels = np.arange(10)
    _, captions = synthetic.render_images(labels, seed=0)
    keywords = ("circle", "ring", "horizontal", "vertical", "plus", "diagonal", "two", "triangle", "four",
                "checkerboard")
    for label, caption in zip(labels, captions, strict=True):
        present = [word for word in keywords if word in caption.split()]
        assert present == [keywords[label]], caption


def test_mean_colour_is_near_chance() -> None:
    labels = np.arange(1000) % 10
    images, _ = synthetic.render_images(labels, seed=2)
    colour = images[:, :, 16:80, 16:80].float().mean(dim=(2, 3)) / 255  # what the 64x64 pipeline sees
    y = torch.from_numpy(labels)
    train, test = slice(0, 500), slice(500, 1000)
    centroids = torch.stack([colour[train][y[train] == k].mean(0) for k in range(10)])
    nearest = torch.cdist(colour[test], centroids).argmin(1)
    assert (nearest == y[test]).float().mean().item() < 0.2
    torch.manual_seed(0)
    logistic = torch.nn.Linear(3, 10)
    optimizer = torch.optim.LBFGS(logistic.parameters(), max_iter=200)
    standard = (colour - colour[train].mean(0)) / colour[train].std(0)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logistic(standard[train]), y[train])
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        assert (logistic(standard[test]).argmax(1) == y[test]).float().mean().item() < 0.2


def test_generate_flickr8k_layout(tmp_path: Path) -> None:
    synthetic.generate_flickr8k(tmp_path / "a", seed=1, n_images=12, size=128)
    synthetic.generate_flickr8k(tmp_path / "b", seed=1, n_images=12, size=128)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    rows = flickr8k.read_captions(tmp_path / "a")
    assert len(rows) == 60
    names = [name for name, _ in flickr8k.one_caption_per_image(rows)]
    assert len(names) == 12 and all(name.endswith(".jpg") for name in names)
    for name in names:
        captions = [caption for image, caption in rows if image == name]
        assert len(captions) == 5 and len(set(captions)) == 5
    with Image.open(tmp_path / "a" / "Images" / names[0]) as image:
        assert image.format == "JPEG" and image.size == (128, 128)
    assert flickr8k.load_images(tmp_path / "a", names[:4]).shape == (4, 3, 64, 64)


def test_flickr_captions_say_only_what_the_image_shows(tmp_path: Path) -> None:
    shown = synthetic.generate_flickr8k(tmp_path, seed=2, n_images=40)
    rows = flickr8k.read_captions(tmp_path)
    assert sorted(shown) == sorted({name for name, _ in rows})
    for name, caption in rows:
        named = synthetic.named_attributes(caption)
        assert named is not None and "shape" in named, caption
        assert named.items() <= shown[name].items(), (caption, shown[name])


def test_the_caption_a_clip_pair_uses_varies_as_real_captions_do(tmp_path: Path) -> None:
    """The first caption of an image (the one CLIP trains on) names everything for some images, only the object
    or only its shape for others: in a batch, shape is then often all that tells two captions apart."""
    synthetic.generate_flickr8k(tmp_path, seed=3, n_images=200)
    firsts = [synthetic.named_attributes(caption) for _, caption in flickr8k.one_caption_per_image(
        flickr8k.read_captions(tmp_path)
    )]
    kinds = {tuple(sorted(named)) for named in firsts}
    assert kinds == {
        ("background", "colour", "pattern", "shape"), ("colour", "shape"), ("shape",)
    }
    assert 0.2 <= sum(named.keys() == {"shape"} for named in firsts) / len(firsts) <= 0.45


def test_named_attributes_reads_queries_and_refuses_other_words() -> None:
    assert synthetic.named_attributes("a red circle") == {"shape": "circle", "colour": "red"}
    assert synthetic.named_attributes(" Blue stripes") == {"background": "blue", "pattern": "striped"}
    assert synthetic.named_attributes("an orange ring") == {"shape": "ring", "colour": "orange"}
    assert synthetic.named_attributes("four dots") == {"shape": "four dots"}
    assert synthetic.named_attributes("a dog running on the grass") is None


def test_attribute_texts_are_deterministic_and_their_targets_agree_with_the_words() -> None:
    texts, targets = synthetic.attribute_texts(300, seed=5)
    again_texts, again_targets = synthetic.attribute_texts(300, seed=5)
    assert texts == again_texts and torch.equal(targets, again_targets)
    assert targets.shape == (300, len(synthetic.ATTRIBUTE_CLASSES)) and targets.dtype == torch.int64
    limits = torch.tensor(list(synthetic.ATTRIBUTE_CLASSES.values()))
    assert bool(((targets >= 0) & (targets < limits)).all())
    for text, row in zip(texts, targets.tolist(), strict=True):
        named = synthetic.named_attributes(text)
        unnamed = [key for key, value in zip(synthetic.ATTRIBUTE_CLASSES, row, strict=True)
                   if value == synthetic.ATTRIBUTE_CLASSES[key] - 1]
        assert set(unnamed) == set(synthetic.ATTRIBUTE_CLASSES) - set(named), text
        if "shape" in named:
            assert synthetic.CLASS_NAMES[row[0]] == named["shape"], text
        if "colour" in named:
            assert list(synthetic.PALETTE)[row[1]] == named["colour"], text
    assert {len(synthetic.named_attributes(text)) for text in texts} == {1, 2, 4}
