# %% [markdown]
# # Worked solutions · 01 · Mode interpolation in 1D
#
# Try the exercises at the end of notebook 01 first. Each solution derives the answer, computes it with a
# few lines of torch, and asks `check` (which recomputes it with the library's exact oracle).

# %%
import math

import torch
from scipy.stats import norm

import vsmlab
from vsmlab.lab.exercises import check

mixture = vsmlab.evenly_spaced_1d(3, 1.0, 1.0, 0.05)
schedule = vsmlab.linear(1000, beta_start=1e-3, beta_end=0.2)
answers = {}

# %% [markdown]
# ## 01.1 · The floor at k = 3
#
# A perfect sample is $\mu_k + s z$ with $z \sim N(0, 1)$; it is off-support when $|z| > k$, on either side:
# $P(|z| > 3) = 2\,(1 - \Phi(3))$.

# %%
answers["01.1"] = 2 * norm.sf(3.0)
check("01.1", answers["01.1"])

# %% [markdown]
# ## 01.2 · Where do the steps go?
#
# $\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)$; count the steps with $\bar\alpha_t < 10^{-4}$.

# %%
standard = vsmlab.linear(1000, 1e-4, 0.02)
answers["01.2"] = float((standard.alpha_bar < 1e-4).double().mean())
print(f"standard: {answers['01.2']:.3f}, aggressive: {float((schedule.alpha_bar < 1e-4).double().mean()):.3f}")
check("01.2", answers["01.2"])

# %% [markdown]
# ## 01.3 · The ideal denoiser between two modes
#
# With $a = \sqrt{\bar\alpha_t}$ each component is noised to $N(a\mu_k, v_k)$, $v_k = a^2 s^2 + 1 - a^2$.
# The responsibilities are $r_k = \mathrm{softmax}_k(-(x_t - a\mu_k)^2 / (2 v_k))$ (equal weights and
# variances), and each component's posterior mean is $\mu_k + \frac{a s^2}{v_k}(x_t - a\mu_k)$.

# %%
t, x_t, s = 10, 1.5, 0.05
a = math.sqrt(float(schedule.alpha_bar[t]))
v = a**2 * s**2 + 1 - a**2
mu = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
r = torch.softmax(-((x_t - a * mu) ** 2) / (2 * v), dim=0)
posterior_mean = float((r * (mu + a * s**2 / v * (x_t - a * mu))).sum())
# Tweedie's formula gives the same number from the score
x = torch.tensor([[x_t]], dtype=torch.float64)
tweedie = float((x + (1 - a**2) * mixture.score(x, torch.tensor([t]), schedule)) / a)
print(f"responsibilities {r.numpy().round(3)}; by hand {posterior_mean:.5f}, Tweedie {tweedie:.5f}")
answers["01.3"] = posterior_mean
check("01.3", answers["01.3"])

# %% [markdown]
# ## 01.4 · When does the switch get wide?
#
# Differentiating Tweedie's formula: $\frac{d}{dx} E[x_0 \mid x_t = x] = (1 + (1 - \bar\alpha_t)\, s'(x)) / \sqrt{\bar\alpha_t}$,
# with $s'$ from `score_jacobian`. The width is $1 / \max$ of that slope on $1.2 < x < 1.8$.

# %%
grid = torch.linspace(1.2, 1.8, 6001, dtype=torch.float64)[:, None]


def width(t: int) -> float:
    ab = float(schedule.alpha_bar[t])
    J = mixture.score_jacobian(grid, torch.full((grid.shape[0],), t), schedule)[:, 0, 0]
    return 1.0 / float(((1 + (1 - ab) * J) / math.sqrt(ab)).max())


widths = [width(t) for t in range(15)]
print(" ".join(f"{w:.3f}" for w in widths))  # it dips at t = 1, 2 before it grows
answers["01.4"] = next(t for t, w in enumerate(widths) if w > 0.1)
check("01.4", answers["01.4"])
