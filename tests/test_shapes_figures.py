"""SimpleShapes figure helper: guides sit on the strip boundaries the generator uses, bad images are refused."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vsmlab.data.shapes import generate, geometry  # noqa: E402
from vsmlab.lab.shapes_figures import STRIP_LABELS, sample_title, show_shapes  # noqa: E402


@pytest.mark.parametrize("size", [32, 64])
def test_guides_bound_every_strip_the_generator_fills(size):
    data = generate(40, size, seed=3)
    fig, ax = plt.subplots()
    show_shapes(ax, data.images[0], title="x")
    xs = sorted(line.get_xdata()[0] for line in ax.get_lines())
    geom = geometry(size)
    assert xs == [c * geom.strip_width - 0.5 for c in (1, 2, 3)]
    # every white pixel of every image lies inside one strip, i.e. between two guides (or the left edge)
    cols = np.nonzero(data.images.max(axis=(0, 1)))[0]
    assert cols.max() < xs[-1] and cols.min() >= 0
    for c in range(3):
        sl = geom.column_slice(c)
        assert xs[c] == sl.stop - 0.5
    assert [t.get_text() for t in ax.get_xticklabels()] == list(STRIP_LABELS)
    assert ax.get_title() == "x"
    assert not any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())  # no theme grid
    plt.close(fig)


def test_x0_hat_range_and_channel_axis_are_accepted():
    fig, ax = plt.subplots()
    show_shapes(ax, np.zeros((1, 32, 32), dtype=np.float32), vmin=-1, vmax=1, guides=False)
    assert ax.get_lines() == [] and ax.images[0].get_clim() == (-1, 1)
    plt.close(fig)


@pytest.mark.parametrize("shape", [(32, 31), (48, 48), (2, 32, 32), (32,)])
def test_wrong_image_shape_names_the_argument(shape):
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"^image: expected one SimpleShapes image"):
        show_shapes(ax, np.zeros(shape))
    plt.close(fig)


def test_sample_title_is_readable():
    assert sample_title("rho0", 1, 17) == "rho0 · seed 1 · #17"
