"""The Flickr8k reader against a tiny folder in the real layout (real JPEGs, real CSV)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autograder.data import flickr8k

CAPTIONS = """image,caption
b.jpg,A red ball on the grass .
a.jpg,"A dog , brown and white , runs through the water ."
b.jpg,A child kicks a ball .
a.jpg,A dog runs .
c.jpg,Two people sit on a bench .
"""


def make_folder(root: Path, captions: str = CAPTIONS) -> Path:
    images = root / "Images"
    images.mkdir(parents=True)
    # a.jpg: red on the left half, blue on the right half (non-square, so resizing matters).
    left_right = np.zeros((30, 50, 3), dtype=np.uint8)
    left_right[:, :25] = (230, 20, 20)
    left_right[:, 25:] = (20, 20, 230)
    Image.fromarray(left_right).save(images / "a.jpg", quality=95)
    Image.fromarray(np.full((40, 40, 3), (20, 200, 20), dtype=np.uint8)).save(images / "b.jpg", quality=95)
    Image.fromarray(np.full((20, 30), 128, dtype=np.uint8), mode="L").save(images / "c.jpg", quality=95)
    (root / "captions.txt").write_text(captions, encoding="utf-8")
    return root


def test_read_captions_keeps_commas(tmp_path: Path) -> None:
    rows = flickr8k.read_captions(make_folder(tmp_path))
    assert len(rows) == 5
    assert rows[1] == ("a.jpg", "A dog , brown and white , runs through the water .")
    assert [name for name, _ in rows] == ["b.jpg", "a.jpg", "b.jpg", "a.jpg", "c.jpg"]


def test_one_caption_per_image_in_first_appearance_order(tmp_path: Path) -> None:
    pairs = flickr8k.one_caption_per_image(flickr8k.read_captions(make_folder(tmp_path)))
    assert pairs == [
        ("b.jpg", "A red ball on the grass ."),
        ("a.jpg", "A dog , brown and white , runs through the water ."),
        ("c.jpg", "Two people sit on a bench ."),
    ]


@pytest.mark.parametrize("n", [10, 7, 1])
def test_train_val_split_follows_the_seeded_permutation(n: int) -> None:
    pairs = [(f"{i}.jpg", f"caption {i}") for i in range(n)]
    train, val = flickr8k.train_val_split(pairs, val_fraction=0.2, seed=3)
    order = np.random.default_rng(3).permutation(n)
    n_train = int(round(0.8 * n))
    assert train == [pairs[i] for i in order[:n_train]]
    assert val == [pairs[i] for i in order[n_train:]]
    assert sorted(train + val) == sorted(pairs)


def test_train_val_split_depends_on_the_seed() -> None:
    pairs = list(range(50))
    assert flickr8k.train_val_split(pairs, seed=42) == flickr8k.train_val_split(pairs, seed=42)
    assert flickr8k.train_val_split(pairs, seed=42)[0] != flickr8k.train_val_split(pairs, seed=43)[0]
    with pytest.raises(ValueError, match="val_fraction"):
        flickr8k.train_val_split(pairs, val_fraction=1.5)


def test_load_images_resizes_to_rgb_squares(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    images = flickr8k.load_images(folder, ["a.jpg", "b.jpg", "c.jpg"], size=16)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 16, 16)
    a = images[0].int()
    # Red stays on the left, blue on the right: channels first, rows and columns not swapped.
    assert a[0, :, :6].float().mean() > 180 and a[2, :, :6].float().mean() < 70
    assert a[2, :, -6:].float().mean() > 180 and a[0, :, -6:].float().mean() < 70
    assert (images[1, 1].float().mean() - 200).abs() < 10
    # A greyscale JPEG comes back as three equal channels.
    c = images[2].int()
    assert torch.equal(c[0], c[1]) and torch.equal(c[1], c[2]) and abs(c.float().mean().item() - 128) < 6


def test_missing_captions_file(tmp_path: Path) -> None:
    (tmp_path / "Images").mkdir()
    with pytest.raises(FileNotFoundError, match="captions.txt"):
        flickr8k.read_captions(tmp_path)


def test_wrong_header(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, CAPTIONS.replace("image,caption", "file,text"))
    with pytest.raises(ValueError, match="header 'image,caption'"):
        flickr8k.read_captions(folder)


def test_unquoted_comma_names_the_line(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, CAPTIONS + "c.jpg,One, two\n")
    with pytest.raises(ValueError, match="line 7: expected 2 fields"):
        flickr8k.read_captions(folder)


def test_listed_image_missing_from_images(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, CAPTIONS + "zzz.jpg,A ghost .\n")
    with pytest.raises(FileNotFoundError, match=r"missing from .*Images: zzz\.jpg"):
        flickr8k.read_captions(folder)
    with pytest.raises(FileNotFoundError, match="zzz.jpg"):
        flickr8k.load_images(folder, ["a.jpg", "zzz.jpg"])
