"""vsmlab.lab.plotting.compact_png: the one PNG encoder of the lab's figures (saved files and inline images).

A plot becomes a 256-colour palette within half a grey level on average; rich-colour images and transparency stay
exact; the bytes are reproducible and re-encoding is a fixed point, so every committed figure (files and images
inside the executed notebooks) must already be what the encoder writes."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from vsmlab.lab.plotting import PNG_MAX_MEAN_ERROR, FigureSaver, compact_png, figure_png_bytes, set_theme  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def pixels(data: bytes, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode), dtype=np.int16)


def line_plot():
    set_theme()
    fig, ax = plt.subplots(figsize=(5, 3))
    x = np.linspace(0, 6, 200)
    for k in range(4):
        ax.plot(x, np.sin(x + k), label=f"phase {k}")
    ax.legend()
    ax.set_title("four phases")
    return fig


def test_a_plot_becomes_a_palette_within_the_mean_error_and_smaller() -> None:
    fig = line_plot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    raw = buf.getvalue()
    out = compact_png(raw)
    plt.close(fig)
    assert Image.open(io.BytesIO(out)).mode == "P"
    err = np.abs(pixels(out) - pixels(raw)).mean()
    assert 0 < err <= PNG_MAX_MEAN_ERROR  # antialiased edges moved a little, not more
    assert len(out) < 0.8 * len(raw)


def test_rich_colour_stays_exact_rgb_and_few_colours_are_exact() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # 4,096 colours: a palette would be far off
    out = compact_png(png(noise))
    assert Image.open(io.BytesIO(out)).mode == "RGB" and (pixels(out) == noise).all()
    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :], 8, axis=0)  # 256 grey levels: a palette is exact
    grey_rgb = np.stack([grey] * 3, axis=-1)
    out = compact_png(png(grey_rgb))
    assert Image.open(io.BytesIO(out)).mode == "P" and (pixels(out) == grey_rgb).all()


def test_transparency_is_kept_exactly() -> None:
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :8, 3] = 255
    rgba[:, 8:, 3] = 40
    out = compact_png(png(rgba))
    assert (pixels(out, "RGBA") == rgba).all()


def test_reproducible_bytes_and_a_fixed_point() -> None:
    a, b = line_plot(), line_plot()
    first, second = figure_png_bytes(a), figure_png_bytes(b)
    plt.close("all")
    assert first == second
    assert compact_png(first) == first


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="data: expected PNG bytes"):
        compact_png(b"not a png")
    with pytest.raises(ValueError, match="max_mean_error"):
        compact_png(png(np.zeros((2, 2, 3), np.uint8)), max_mean_error=-1)


def test_figure_saver_writes_the_compact_encoding(tmp_path) -> None:
    fig = line_plot()
    saver = FigureSaver(tmp_path, notebook="01_x", profile="smoke", seed=0)
    path = saver.save(fig, "phases")
    expected = figure_png_bytes(fig)
    plt.close(fig)
    assert path.read_bytes() == expected and Image.open(path).mode == "P"


def tracked(*patterns: str) -> list[Path]:
    names = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / n for n in names.split()]


@pytest.mark.slow
def test_every_committed_figure_is_already_compact() -> None:
    """Published figures and the images inside the executed notebooks are what the encoder writes (a figure saved
    another way, or an encoder that is not a fixed point, fails here)."""
    bad = []
    for path in tracked("*.png"):
        data = path.read_bytes()
        if compact_png(data) != data:
            bad.append(str(path.relative_to(ROOT)))
    for path in tracked("*.ipynb"):
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            for out in cell.get("outputs", []):
                b64 = out.get("data", {}).get("image/png")
                if b64 is not None:
                    data = base64.b64decode("".join(b64) if isinstance(b64, list) else b64)
                    if compact_png(data) != data:
                        bad.append(f"{path.relative_to(ROOT)} cell {i}")
    assert not bad, f"{len(bad)} figures not written by vsmlab.lab.plotting.compact_png: {bad[:8]}"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_inline_figures_in_a_kernel_use_the_compact_encoding(monkeypatch) -> None:
    """In a real kernel, after set_theme(), a figure shown at the end of a cell and one shown by display() are
    embedded as the compact palette PNG (the inline backend installs its own printer when it loads; it is replaced)."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("MPLBACKEND", raising=False)  # as a notebook runs for a reader: the kernel's inline backend

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfrom vsmlab.lab.plotting import set_theme\nset_theme()"),
                nbformat.v4.new_code_cell("fig, ax = plt.subplots()\n_ = ax.plot([0, 1, 2], [0, 1, 0])"),
                nbformat.v4.new_code_cell("from IPython.display import display\nfig, ax = plt.subplots()\n_ = ax.plot([0, 1], [1, 0])\n"
                                          "display(fig)\nplt.close(fig)")]
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    images = [base64.b64decode(o["data"]["image/png"]) for c in nb.cells for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2
    for data in images:
        assert Image.open(io.BytesIO(data)).mode == "P" and compact_png(data) == data
