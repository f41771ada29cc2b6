"""The STL-10 reader against files built byte by byte in the real on-disk layout."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.data import stl10

SIDE = 96
CHANNEL = SIDE * SIDE


def pixel_value(i: int, c: np.ndarray, r: np.ndarray, col: np.ndarray) -> np.ndarray:
    """A value we can predict at (image i, channel c, row r, column col): channel 0 is a horizontal
    gradient, channel 1 a vertical one, channel 2 a constant that identifies the image."""
    return np.where(c == 0, col * 2, np.where(c == 1, r * 2 + 1, (i * 7) % 256))


def disk_bytes(n: int) -> bytes:
    """n images in the documented layout: channel-major, each channel column-major, so the byte
    for (c, r, col) sits at offset c*96*96 + col*96 + r."""
    out = np.empty(n * stl10.IMAGE_BYTES, dtype=np.uint8)
    c, col, r = np.meshgrid(np.arange(3), np.arange(SIDE), np.arange(SIDE), indexing="ij")
    offsets = (c * CHANNEL + col * SIDE + r).ravel()
    for i in range(n):
        out[i * stl10.IMAGE_BYTES + offsets] = pixel_value(i, c, r, col).ravel()
    return out.tobytes()


def write_raw(root: Path, split: str, n: int, labels_on_disk: list[int] | None) -> Path:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    x_name, y_name = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"),
                      "unlabeled": ("unlabeled_X.bin", None)}[split]
    (folder / x_name).write_bytes(disk_bytes(n))
    if y_name is not None and labels_on_disk is not None:
        (folder / y_name).write_bytes(bytes(labels_on_disk))
    return folder


def test_orientation_and_labels(tmp_path: Path) -> None:
    write_raw(tmp_path, "train", 3, [1, 10, 4])
    images, labels = stl10.read_split(tmp_path, "train")
    assert images.dtype == torch.uint8 and images.shape == (3, 3, SIDE, SIDE)
    cols = torch.arange(SIDE, dtype=torch.int64)
    # A horizontal gradient stays horizontal: every row of channel 0 runs 0, 2, 4, ... left to right.
    assert torch.equal(images[1, 0].long(), (cols * 2).expand(SIDE, SIDE))
    # A vertical gradient stays vertical: every column of channel 1 runs 1, 3, 5, ... top to bottom.
    assert torch.equal(images[2, 1].long(), (cols * 2 + 1)[:, None].expand(SIDE, SIDE))
    assert images[:, 2, 0, 0].tolist() == [0, 7, 14]
    assert labels is not None and labels.dtype == torch.int64
    assert labels.tolist() == [0, 9, 3]


def test_indices_select_images_and_labels(tmp_path: Path) -> None:
    write_raw(tmp_path, "test", 6, [1, 2, 3, 4, 5, 6])
    images, labels = stl10.read_split(tmp_path, "test", indices=[4, 0, 4])
    assert images[:, 2, 5, 5].tolist() == [28, 0, 28]
    assert labels is not None and labels.tolist() == [4, 0, 4]
    empty, empty_labels = stl10.read_split(tmp_path, "test", indices=[])
    assert empty.shape == (0, 3, SIDE, SIDE) and empty_labels is not None and empty_labels.numel() == 0


def test_full_read_owns_its_memory(tmp_path: Path) -> None:
    folder = write_raw(tmp_path, "unlabeled", 2, None)
    images, _ = stl10.read_split(tmp_path, "unlabeled")
    with open(folder / "unlabeled_X.bin", "r+b") as f:
        f.write(b"\x00" * (2 * stl10.IMAGE_BYTES))
    assert images[1, 2].eq(7).all() and int(images[1, 0, 0, 95]) == 190


def test_unlabeled_has_no_labels(tmp_path: Path) -> None:
    write_raw(tmp_path, "unlabeled", 2, None)
    images, labels = stl10.read_split(tmp_path, "unlabeled")
    assert labels is None and images.shape == (2, 3, SIDE, SIDE)


def test_write_split_matches_the_hand_built_layout(tmp_path: Path) -> None:
    hand = tmp_path / "hand"
    write_raw(hand, "train", 4, [3, 1, 10, 2])
    images, labels = stl10.read_split(hand, "train")
    ours = tmp_path / "ours"
    stl10.write_split(ours, "train", images, labels)
    for name in ("train_X.bin", "train_y.bin"):
        assert (ours / "stl10_binary" / name).read_bytes() == (hand / "stl10_binary" / name).read_bytes()
    names = (ours / "stl10_binary" / "class_names.txt").read_text().split()
    assert tuple(names) == stl10.CLASS_NAMES


def test_round_trip_random_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (5, 3, SIDE, SIDE), dtype=np.uint8))
    labels = torch.tensor([0, 9, 5, 5, 2])
    stl10.write_split(tmp_path, "test", images, labels)
    stl10.write_split(tmp_path, "unlabeled", images.numpy(), None)
    back, back_labels = stl10.read_split(tmp_path, "test")
    assert torch.equal(back, images) and back_labels is not None and torch.equal(back_labels, labels)
    assert torch.equal(stl10.read_split(tmp_path, "unlabeled")[0], images)


def test_write_split_rejects_bad_input(tmp_path: Path) -> None:
    good = np.zeros((2, 3, SIDE, SIDE), dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        stl10.write_split(tmp_path, "train", good.astype(np.float32), [0, 1])
    with pytest.raises(ValueError, match="0..9"):
        stl10.write_split(tmp_path, "train", good, [0, 10])
    with pytest.raises(ValueError, match="2 images"):
        stl10.write_split(tmp_path, "train", good, [0])
    with pytest.raises(ValueError, match="labels=None"):
        stl10.write_split(tmp_path, "unlabeled", good, [0, 1])


def test_truncated_and_empty_image_files(tmp_path: Path) -> None:
    folder = write_raw(tmp_path, "train", 2, [1, 2])
    data = (folder / "train_X.bin").read_bytes()
    (folder / "train_X.bin").write_bytes(data[:-100])
    with pytest.raises(stl10.STL10FormatError, match=r"train_X\.bin.*not a positive multiple of 27648"):
        stl10.read_split(tmp_path, "train")
    (folder / "train_X.bin").write_bytes(b"")
    with pytest.raises(stl10.STL10FormatError, match=r"train_X\.bin"):
        stl10.read_split(tmp_path, "train")


def test_label_count_must_match(tmp_path: Path) -> None:
    write_raw(tmp_path, "train", 3, [1, 2])
    with pytest.raises(stl10.STL10FormatError, match=r"train_y\.bin: holds 2 labels.*3 images"):
        stl10.read_split(tmp_path, "train")


@pytest.mark.parametrize("bad", [0, 11, 255])
def test_label_values_must_be_1_to_10(tmp_path: Path, bad: int) -> None:
    write_raw(tmp_path, "test", 3, [1, bad, 2])
    with pytest.raises(stl10.STL10FormatError, match=rf"test_y\.bin: label {bad} at position 1"):
        stl10.read_split(tmp_path, "test")


def test_bad_split_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'validation'.*\['test', 'train', 'unlabeled'\]"):
        stl10.read_split(tmp_path, "validation")


def test_missing_folder_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train_X\.bin.*must contain stl10_binary/"):
        stl10.read_split(tmp_path / "nowhere", "train")
    folder = write_raw(tmp_path, "train", 1, None)
    with pytest.raises(FileNotFoundError, match=r"train_y\.bin"):
        stl10.read_split(tmp_path, "train")
    # Passing stl10_binary/ itself is the usual mistake: the message names the folder to pass instead.
    with pytest.raises(FileNotFoundError, match="not stl10_binary/ itself"):
        stl10.read_split(folder, "train")


def test_index_out_of_range(tmp_path: Path) -> None:
    write_raw(tmp_path, "unlabeled", 4, None)
    with pytest.raises(IndexError, match=r"index 4 .* 0\.\.3"):
        stl10.read_split(tmp_path, "unlabeled", indices=[1, 4])
    with pytest.raises(IndexError, match=r"index -1 "):
        stl10.read_split(tmp_path, "unlabeled", indices=[-1])


def test_indices_read_through_a_memory_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 2000
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    x_path = folder / "unlabeled_X.bin"
    # Each image is filled with its index modulo 251, so any image read can be identified.
    with open(x_path, "wb") as f:
        for i in range(n):
            f.write(bytes([i % 251]) * stl10.IMAGE_BYTES)
    mapped: list[str] = []
    real_memmap = np.memmap

    def spy_memmap(path, *args, **kwargs):
        mapped.append(Path(path).name)
        return real_memmap(path, *args, **kwargs)

    def no_fromfile(path, *args, **kwargs):
        raise AssertionError(f"read the whole of {path} with np.fromfile")

    monkeypatch.setattr(np, "memmap", spy_memmap)
    monkeypatch.setattr(np, "fromfile", no_fromfile)
    images, labels = stl10.read_split(tmp_path, "unlabeled", indices=[1999, 3, 1000])
    assert mapped == ["unlabeled_X.bin"] and labels is None
    assert images.shape == (3, 3, SIDE, SIDE)
    assert [int(images[k].unique().item()) for k in range(3)] == [1999 % 251, 3, 1000 % 251]
    # The returned tensor owns its memory: changing the file afterwards does not change it.
    with open(x_path, "r+b") as f:
        f.seek(1999 * stl10.IMAGE_BYTES)
        f.write(b"\xff" * stl10.IMAGE_BYTES)
    assert int(images[0].max()) == 1999 % 251


def test_verify_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_raw(tmp_path, "train", 2, [1, 2])
    assert stl10.verify_checksums(tmp_path) == [
        "train_X.bin", "train_y.bin", "test_X.bin (missing)", "test_y.bin (missing)",
        "unlabeled_X.bin (missing)",
    ]
    expected = dict(stl10.EXPECTED_MD5)
    for name in ("train_X.bin", "train_y.bin"):
        expected[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    monkeypatch.setattr(stl10, "EXPECTED_MD5", expected)
    assert stl10.verify_checksums(tmp_path) == ["test_X.bin (missing)", "test_y.bin (missing)",
                                                "unlabeled_X.bin (missing)"]
