# %% [markdown]
# # Worked solutions · 06 · SimpleShapes
#
# Try the exercises at the end of notebook 06 first.

# %%
import itertools
import math

import numpy as np

from vsmlab.data.shapes import template_bank
from vsmlab.data.shapes_validate import validate
from vsmlab.lab.exercises import check

bank = template_bank(32)
answers = {}

# %% [markdown]
# ## 06.1 · Compositions
#
# A pattern says which of the 3 columns hold a shape: $2^3 - 1 = 7$ non-blank patterns, of which
# $\binom{3}{2} = 3$ hold exactly two.

# %%
patterns = [p for p in itertools.product([0, 1], repeat=3) if any(p)]
answers["06.1"] = sum(sum(p) == 2 for p in patterns)
check("06.1", answers["06.1"])

# %% [markdown]
# ## 06.2 · How many distinct images?
#
# Each column is blank or holds its shape at one of $M_c$ positions: $\prod_c (M_c + 1)$ images, minus the blank one.

# %%
M = bank.counts()
answers["06.2"] = math.prod(m + 1 for m in M) - 1
print(f"positions {M}: {answers['06.2']:,} images")
check("06.2", answers["06.2"])

# %% [markdown]
# ## 06.3 · Copies by chance
#
# A pattern $P$ has probability $1/7$; given it, a particular image has probability $q_P = \frac17 \prod_{c \in P} 1/M_c$
# of being drawn. A fresh sample of pattern $P$ is a copy when that image occurs among the 5,000 training draws:
# probability $1 - (1 - q_P)^{5000}$. Summing over patterns:

# %%
chance = 0.0
for p in patterns:
    q = (1 / 7) * math.prod(1 / m for m, used in zip(M, p) if used)
    chance += (1 / 7) * (1 - (1 - q) ** 5000)
answers["06.3"] = chance
print(f"{100 * chance:.1f}% (single-shape patterns contribute almost all of it)")
check("06.3", answers["06.3"])

# %% [markdown]
# ## 06.4 · Build a hallucination
#
# Two triangle strips from the template bank, one near the top and one near the bottom of column 0 (columns 0..9,
# rows 0..30), combined with a logical or: two separate components, each a perfect triangle.

# %%
strips = bank.masks[0]
top = int(np.argmin(bank.positions[0][:, 1]))
bottom = int(np.argmax(bank.positions[0][:, 1]))
image = np.zeros((32, 32), dtype=np.uint8)
image[:31, 0:10][strips[top] | strips[bottom]] = 255
print("validator:", validate(image[None], size=32)[0].categories)
answers["06.4"] = image
check("06.4", answers["06.4"])
