"""PNG folder loading and writing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vsmlab.data.pngs import list_pngs, load_png_folder, write_png_folder


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _gray(seed: int, h: int = 8, w: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def test_recursive_sorted_by_relative_path(tmp_path):
    arrays = {"b.png": _gray(0), "a/z.png": _gray(1), "a/b/c.PNG": _gray(2), "c.png": _gray(3)}
    for name, arr in arrays.items():
        _save(tmp_path / name, arr)
    (tmp_path / "notes.txt").write_text("not an image, not a .png: ignored")
    images, names = load_png_folder(tmp_path)
    assert names == ["a/b/c.PNG", "a/z.png", "b.png", "c.png"]
    assert images.shape == (4, 8, 8) and images.dtype == np.uint8
    for img, name in zip(images, names):
        assert np.array_equal(img, arrays[name])


def test_rgb_folder(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (3, 6, 5, 3), dtype=np.uint8)
    write_png_folder(rgb, tmp_path / "out")
    images, names = load_png_folder(tmp_path / "out")
    assert images.shape == (3, 6, 5, 3) and np.array_equal(images, rgb)
    assert names == ["00000.png", "00001.png", "00002.png"]


def test_mixed_sizes_named(tmp_path):
    _save(tmp_path / "a.png", _gray(0))
    _save(tmp_path / "b.png", _gray(1, 9, 8))
    with pytest.raises(ValueError, match=r"b\.png.*size 8x9.*expected 8x8.*'a\.png'"):
        load_png_folder(tmp_path)


def test_mixed_modes_named(tmp_path):
    _save(tmp_path / "a.png", _gray(0))
    _save(tmp_path / "b.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"b\.png.*mode RGB.*mode L"):
        load_png_folder(tmp_path)


def test_unsupported_mode_named(tmp_path):
    Image.fromarray(_gray(0)).convert("P").save(tmp_path / "p.png")
    with pytest.raises(ValueError, match=r"p\.png.*mode 'P'.*L, RGB"):
        load_png_folder(tmp_path)


def test_non_image_png_named(tmp_path):
    _save(tmp_path / "a.png", _gray(0))
    (tmp_path / "broken.png").write_bytes(b"this is not a PNG")
    with pytest.raises(ValueError, match=r"broken\.png.*not a readable PNG"):
        load_png_folder(tmp_path)


def test_jpeg_named_png_is_refused(tmp_path):
    Image.fromarray(_gray(0)).save(tmp_path / "x.png", format="JPEG")
    with pytest.raises(ValueError, match=r"x\.png.*JPEG.*not a PNG"):
        load_png_folder(tmp_path)


def test_empty_and_missing_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no .png files"):
        load_png_folder(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        list_pngs(tmp_path / "nope")


def test_writer_refuses_existing_and_force_replaces_whole_folder(tmp_path):
    out = tmp_path / "set"
    write_png_folder(np.stack([_gray(i) for i in range(5)]), out, extra_files={"factors.json": b"{}"})
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png", "00003.png",
                                                     "00004.png", "factors.json"]
    before = load_png_folder(out)[0]
    with pytest.raises(FileExistsError, match=str(out)):
        write_png_folder(np.stack([_gray(9)]), out)
    assert np.array_equal(load_png_folder(out)[0], before)  # nothing lost
    write_png_folder(np.stack([_gray(9), _gray(8)]), out, force=True)
    images, names = load_png_folder(out)
    assert names == ["00000.png", "00001.png"] and np.array_equal(images[0], _gray(9))  # no stale files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        write_png_folder(np.stack([_gray(1)]), tmp_path / "file.png")


def test_writer_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_png_folder(np.zeros((2, 4, 4), np.float32), tmp_path / "a")
    with pytest.raises(ValueError, match="names"):
        write_png_folder(np.zeros((2, 4, 4), np.uint8), tmp_path / "b", names=["x.png"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_list_pngs_flat_and_recursive(tmp_path):
    for name in ("b.png", "a.PNG", ".hidden.png", "sub/c.png"):
        _save(tmp_path / name, _gray(0))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_pngs(tmp_path)] == ["a.PNG", "b.png"]  # directly inside, hidden names skipped
    assert [p.relative_to(tmp_path).as_posix() for p in list_pngs(tmp_path, recursive=True)] == [
        ".hidden.png", "a.PNG", "b.png", "sub/c.png"]
