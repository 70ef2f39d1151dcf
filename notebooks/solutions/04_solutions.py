# %% [markdown]
# # Worked solutions · 04 · Jacobian estimators
#
# Try the exercises at the end of notebook 04 first.

# %%
import itertools
import math

import torch

import vsmlab
from vsmlab.lab.exercises import check

schedule = vsmlab.linear(1000, beta_start=1e-3, beta_end=0.2)
answers = {}

# %% [markdown]
# ## 04.1 · The Jacobian at a mode
#
# At a noised centre one component dominates and $J \approx -I / v$, $v = a^2 s^2 + 1 - a^2$, so
# $\|J\|_2 \approx 1/v$. The diamond's std after normalisation is $0.05 / \sqrt{8.0025}$.

# %%
diamond = vsmlab.diamond_2d()
a = math.sqrt(float(schedule.alpha_bar[10]))
s = float(diamond.stds[0])
answers["04.1"] = 1 / (a**2 * s**2 + 1 - a**2)
check("04.1", answers["04.1"])

# %% [markdown]
# ## 04.2 · Why Rademacher probes win near a mode
#
# $z^\top J z = \sum_i J_{ii} z_i^2 + \sum_{i \ne j} J_{ij} z_i z_j$ and $z_i^2 = 1$: only the off-diagonal part
# varies, with variance $2 \sum_{i \ne j} J_{ij}^2 = 2 (1 + 1) = 4$. Enumerating the four sign vectors agrees.

# %%
J = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
values = torch.stack([z @ J @ z for z in torch.tensor(list(itertools.product([-1.0, 1.0], repeat=2)), dtype=torch.float64)])
print("z^T J z over the sign vectors:", values.tolist())
answers["04.2"] = float(values.var(unbiased=False))
check("04.2", answers["04.2"])

# %% [markdown]
# ## 04.3 · How many power iterations?
#
# $0.9^{2k} < 10^{-6} \iff k > \log(10^{-6}) / (2 \log 0.9) = 65.6$, so $k = 66$.

# %%
answers["04.3"] = math.ceil(math.log(1e-6) / (2 * math.log(0.9)))
check("04.3", answers["04.3"])
