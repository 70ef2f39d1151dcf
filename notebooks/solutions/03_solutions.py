# %% [markdown]
# # Worked solutions · 03 · Smoothness and hallucination
#
# Try the exercises at the end of notebook 03 first.

# %%
import math

import vsmlab
from vsmlab.lab.exercises import check
from vsmlab.lab.explorer_state import compute_state

schedule = vsmlab.linear(1000, beta_start=1e-3, beta_end=0.2)
a = math.sqrt(float(schedule.alpha_bar[0]))
v0 = float(schedule.alpha_bar[0]) * 0.05**2 + 1 - float(schedule.alpha_bar[0])
answers = {}

# %% [markdown]
# ## 03.1 · Curvature at a mode
#
# Near a mode one component dominates: $s(x) \approx -(x - a\mu)/v_0$, a slope of $-1/v_0$ with
# $v_0 = \bar\alpha_0 s^2 + 1 - \bar\alpha_0 = 0.0034975$.

# %%
answers["03.1"] = 1 / v0
check("03.1", answers["03.1"])

# %% [markdown]
# ## 03.2 · The steepest point sits in the gap
#
# In 1-D, $s'(x) = -\sum_k r_k / v_k + \sum_k r_k g_k^2 - s^2$ with $g_k = -(x - a\mu_k)/v_k$. At the midpoint
# between $a \cdot 1$ and $a \cdot 2$: $r_1 = r_2 = 1/2$ (mode 3 is negligible), $g = \mp (a/2)/v_0$ and $s = 0$, so
# $s' = -1/v_0 + (a / (2 v_0))^2$.

# %%
answers["03.2"] = abs(-1 / v0 + (a / (2 * v0)) ** 2)
print(f"L = {answers['03.2']:.1f}, {answers['03.2'] * v0:.0f} times L_+")
check("03.2", answers["03.2"])

# %% [markdown]
# ## 03.3 · When does smoothing open a mode in the gap?
#
# With temperature $\tau$ the outer-product part is divided by $\tau$; at the midpoint the responsibilities stay
# $1/2$ for any $\tau$ (symmetry), so $s'(\tau) = -1/v_0 + (a/2)^2 / (\tau v_0^2)$, zero at
# $\tau^* = (a/2)^2 / v_0$.

# %%
answers["03.3"] = (a / 2) ** 2 / v0
check("03.3", answers["03.3"])

# %% [markdown]
# ## 03.4 · Find a setting with the explorer
#
# Read the explorer's rate readout at each temperature in turn (or call `compute_state`, which the widget calls).

# %%
for tau in (1, 2, 3, 5, 10, 20, 30):
    rate = compute_state(temperature=float(tau)).rate
    print(f"tau = {tau:>2}: {rate}")
    if rate.low > 0.01:
        answers["03.4"] = tau
        break
check("03.4", answers["03.4"])
