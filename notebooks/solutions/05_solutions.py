# %% [markdown]
# # Worked solutions · 05 · VSM and the other mitigations
#
# Try the exercises at the end of notebook 05 first.

# %%
import math

import torch
from scipy.stats import t as student_t

import vsmlab
from vsmlab.analysis.power import mde_paired_t
from vsmlab.lab.exercises import check

schedule = vsmlab.linear(1000, beta_start=1e-3, beta_end=0.2)
answers = {}

# %% [markdown]
# ## 05.1 · The size of the penalty
#
# $w(100) = \rho / \sqrt{1 - \bar\alpha_{100}}$ and $P = \Sigma^2 / (1 + \Sigma^2)$ at $\Sigma = \beta_{100}$.

# %%
beta = float(schedule.betas[100])
weight = 0.1 / math.sqrt(1 - float(schedule.alpha_bar[100]))
answers["05.1"] = weight * beta**2 / (1 + beta**2)
print(f"beta_100 = {beta:.4f}, w = {weight:.4f}, term = {answers['05.1']:.3e}")
check("05.1", answers["05.1"])

# %% [markdown]
# ## 05.2 · Where can a variance penalty act at all?
#
# The largest relative change is $1 - \tilde\beta_t / \beta_t = 1 - (1 - \bar\alpha_{t-1}) / (1 - \bar\alpha_t)$,
# which falls towards 0 as $\bar\alpha_t$ shrinks.

# %%
change = 1 - schedule.beta_tilde / schedule.betas
answers["05.2"] = int(torch.nonzero(change < 0.01)[0, 0])
print(f"first step below 1%: t = {answers['05.2']} (change {float(change[answers['05.2']]):.4f})")
check("05.2", answers["05.2"])

# %% [markdown]
# ## 05.3 · How large an effect can ten seeds see?
#
# The standard approximation: $\delta \approx (t_{0.975, 9} + t_{0.8, 9})\, \mathrm{sd} / \sqrt{10}$; the library
# solves the noncentral-t power equation exactly.

# %%
approx = (student_t.ppf(0.975, 9) + student_t.ppf(0.8, 9)) * 0.5 / math.sqrt(10)
print(f"approximation {approx:.4f} pp, exact {mde_paired_t(0.5, 10):.4f} pp")
answers["05.3"] = approx
check("05.3", answers["05.3"])
