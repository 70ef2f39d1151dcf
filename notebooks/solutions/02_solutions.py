# %% [markdown]
# # Worked solutions · 02 · Mode interpolation in 2D
#
# Try the exercises at the end of notebook 02 first.

# %%
import math

import torch

import vsmlab
from vsmlab.lab.exercises import check

grid, diamond = vsmlab.grid_2d(), vsmlab.diamond_2d()
answers = {}

# %% [markdown]
# ## 02.1 · Spacing after normalisation
#
# Per axis the centres $-4, -2, 0, 2, 4$ have mean 0 and variance $(16 + 4 + 0 + 4 + 16)/5 = 8$; each component
# adds $s^2 = 0.0025$. The global std is $\sqrt{8.0025}$ and the spacing becomes $2 / \sqrt{8.0025}$.

# %%
answers["02.1"] = 2 / math.sqrt(8 + 0.05**2)
print(f"by hand {answers['02.1']:.6f}, library {grid.min_mode_spacing():.6f}")
check("02.1", answers["02.1"])

# %% [markdown]
# ## 02.2 · Bridges
#
# Each row of 5 modes has 4 horizontal neighbour pairs (5 rows: 20), each column 4 vertical ones (20): 40.
# A rotation keeps all distances, so the diamond has the same 40.

# %%
answers["02.2"] = (2 * 5 * 4, 2 * 5 * 4)
print("library:", grid.neighbour_pairs().shape[0], diamond.neighbour_pairs().shape[0])
check("02.2", answers["02.2"])

# %% [markdown]
# ## 02.3 · Which way do the bridges point?
#
# The grid's bridges point at 0 and 90 degrees; rotating by 45 turns them to 45 and 135 (modulo 180).

# %%
pairs = diamond.neighbour_pairs()
segments = diamond.means[pairs[:, 1]] - diamond.means[pairs[:, 0]]
angles = torch.rad2deg(torch.atan2(segments[:, 1], segments[:, 0])) % 180
answers["02.3"] = sorted({round(float(a)) % 180 for a in angles})
print(answers["02.3"])
check("02.3", answers["02.3"])

# %% [markdown]
# ## 02.4 · The floor in 2-D
#
# $\|z\|^2 \sim \chi^2_2$, the exponential distribution with mean 2: $P(\|z\|^2 > r) = e^{-r/2}$, so
# $P(\|z\| > 4) = e^{-8}$.

# %%
answers["02.4"] = math.exp(-8)
check("02.4", answers["02.4"])
