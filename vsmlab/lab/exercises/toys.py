"""Exercises of notebooks 01-03: mode interpolation in 1-D and 2-D, smoothness and hallucination.

Every truth comes from the exact Gaussian-mixture oracle (:mod:`vsmlab.data.mixtures`) at check time.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from vsmlab.lab.exercises.answers import (BadAnswer, Exercise, choice, exercise, number, numbers_list, numeric,
                                          percent_trap, share, whole)

__all__ = ["EXERCISES", "transition_width"]


# ------------------------------------------------------------------------------------- shared setup
@functools.lru_cache(maxsize=None)
def _mixture_1d(num_modes: int = 3):
    from vsmlab.data.mixtures import evenly_spaced_1d

    return evenly_spaced_1d(num_modes, 1.0, 1.0, 0.05)


@functools.lru_cache(maxsize=None)
def _schedule():
    from vsmlab.core.schedules import linear

    return linear(1000, 1e-3, 0.2)


def _steps(t: int, n: int) -> torch.Tensor:
    return torch.full((n,), t, dtype=torch.long)


SETUP_1D = ("the notebook's mixture vsmlab.evenly_spaced_1d(3, 1.0, 1.0, 0.05) (modes 1, 2, 3, std 0.05) and "
            "schedule vsmlab.linear(1000, 1e-3, 0.2)")


# ------------------------------------------------------------------------------------- 01: 1-D
@functools.lru_cache(maxsize=None)
def _floor_k3() -> float:
    return _mixture_1d().support_floor(3.0)


@functools.lru_cache(maxsize=None)
def _pure_noise_share() -> float:
    from vsmlab.core.schedules import linear

    return float((linear(1000, 1e-4, 0.02).alpha_bar < 1e-4).double().mean())


@functools.lru_cache(maxsize=None)
def _posterior_mean_15() -> float:
    x = torch.tensor([[1.5]], dtype=torch.float64)
    return float(_mixture_1d().posterior_mean(x, _steps(10, 1), _schedule()))


def transition_width(t: int, num_points: int = 6001) -> float:
    """Width of the exact denoiser's switch between modes 1 and 2 at step t: 1 / max_x dE[x0|x_t=x]/dx over
    1.2 < x < 1.8 (finite differences of the exact posterior mean on ``num_points`` points, float64)."""
    x = torch.linspace(1.2, 1.8, num_points, dtype=torch.float64)[:, None]
    x0 = _mixture_1d().posterior_mean(x, _steps(t, num_points), _schedule())[:, 0]
    return 1.0 / float(((x0[1:] - x0[:-1]) / (x[1:, 0] - x[:-1, 0])).max())


@functools.lru_cache(maxsize=None)
def _first_wide_step() -> int:
    return next(t for t in range(_schedule().num_steps) if transition_width(t) > 0.1)


def _grade_first_wide(t: int) -> tuple[str, str]:
    truth = _first_wide_step()
    if t == truth:
        before = f"{transition_width(t - 1):.4f} at t = {t - 1}, " if t > 0 else ""
        return "right", (f"t = {t}: width {before}{transition_width(t):.4f} at t = {t}. The exact switch stays "
                         "narrower than a tenth of the spacing only over the first few steps.")
    if not 0 <= t < _schedule().num_steps:
        return "wrong", f"a step lies in 0..{_schedule().num_steps - 1}; compute the width for t = 0, 1, 2, ... in turn"
    width = transition_width(t)
    side = "already wider than 0.1 here, but not for the first time" if width > 0.1 else "still narrower than 0.1"
    status = "close" if abs(t - truth) <= 2 else "wrong"
    return status, (f"at t = {t} the exact width is {width:.4f}: {side}. Compute the width for every t from 0 up "
                    "and stop at the first value above 0.1 (it dips over the first two steps before it grows).")


# ------------------------------------------------------------------------------------- 02: 2-D
@functools.lru_cache(maxsize=None)
def _grid():
    from vsmlab.data.mixtures import grid_2d

    return grid_2d()


@functools.lru_cache(maxsize=None)
def _diamond():
    from vsmlab.data.mixtures import diamond_2d

    return diamond_2d()


@functools.lru_cache(maxsize=None)
def _bridge_counts() -> tuple[int, int]:
    return int(_grid().neighbour_pairs().shape[0]), int(_diamond().neighbour_pairs().shape[0])


def _pair(x: Any) -> tuple[int, int]:
    values = numbers_list(x, "two whole numbers (grid count, diamond count)")
    if len(values) != 2 or any(v != round(v) for v in values):
        raise BadAnswer(f"expected two whole numbers (grid count, diamond count), got {values}")
    return int(values[0]), int(values[1])


def _grade_bridges(answer: tuple[int, int]) -> tuple[str, str]:
    truth = _bridge_counts()
    if answer == truth:
        return "right", (f"{truth[0]} and {truth[1]}: 2 n (n - 1) = 40 for n = 5 in both layouts. A rotation keeps "
                         "every distance, so it keeps the neighbours and turns their bridges with it.")
    if answer == tuple(2 * v for v in truth):
        return "wrong", "each bridge joins an unordered pair of modes: count the pair (i, j) once, not also as (j, i)"
    hint = ("per row of 5 modes there are 4 horizontal neighbour pairs, and as many vertical ones per column; "
            "rotating the layout changes no distance between modes")
    return ("close" if truth[0] in answer or truth[1] in answer else "wrong"), hint


@functools.lru_cache(maxsize=None)
def _diamond_angles() -> tuple[float, ...]:
    mix = _diamond()
    pairs = mix.neighbour_pairs()
    seg = mix.means[pairs[:, 1]] - mix.means[pairs[:, 0]]
    angles = torch.rad2deg(torch.atan2(seg[:, 1], seg[:, 0])) % 180
    return tuple(sorted({round(float(a), 6) % 180 for a in angles}))


def _grade_angles(answer: list[float]) -> tuple[str, str]:
    truth = _diamond_angles()

    def dist(a: float, b: float) -> float:
        d = abs(a - b) % 180
        return min(d, 180 - d)

    given = {round(a % 180, 6) for a in answer}
    found = {t for t in truth if any(dist(a, t) <= 1.0 for a in given)}
    extra = [a for a in given if all(dist(a, t) > 1.0 for t in truth)]
    shown = ", ".join(f"{t:g}" for t in truth)
    if found == set(truth) and not extra:
        return "right", (f"{shown} degrees: the grid's bridges (0 and 90 degrees) turned by 45. The angle histogram "
                         "of the learned model's hallucinations peaks there, not at 0 or 90.")
    if found:
        what = "some of your angles are not bridge directions" if extra else "there is a second direction"
        return "close", f"{what}: a bridge joins a mode to each nearest neighbour, in two perpendicular directions"
    return "wrong", ("on the grid the nearest neighbours sit left/right and above/below (0 and 90 degrees); the diamond "
                     "is the same grid rotated by 45 degrees (angles are taken modulo 180)")


# ------------------------------------------------------------------------------------- 03: smoothness
def _jacobian_1d(x: torch.Tensor, t: int = 0, num_modes: int = 3, temperature: float = 1.0) -> torch.Tensor:
    return _mixture_1d(num_modes).score_jacobian(x, _steps(t, x.shape[0]), _schedule(), temperature)[:, 0, 0]


def _noised_centres(t: int = 0) -> torch.Tensor:
    return math.sqrt(float(_schedule().alpha_bar[t])) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def _lipschitz_plus() -> float:
    x = torch.linspace(0.5, 3.5, 300001, dtype=torch.float64)[:, None]
    return float((-_jacobian_1d(x)).max())


@functools.lru_cache(maxsize=None)
def _lipschitz_global() -> float:
    c = _noised_centres()
    mids = ((c[1:] + c[:-1]) / 2)[:, None]
    x = torch.cat([torch.linspace(0.5, 3.5, 300001, dtype=torch.float64)[:, None], mids])
    return float(_jacobian_1d(x).abs().max())


@functools.lru_cache(maxsize=None)
def _critical_temperature() -> float:
    """The temperature above which the smoothed score of the two-mode mixture {1, 2} has a negative slope at
    the midpoint between the noised centres at t = 0 (bisection on the exact smoothed Jacobian)."""
    mid = torch.tensor([[float(_noised_centres()[:2].mean())]], dtype=torch.float64)
    lo, hi = 1.0, 1e4
    for _ in range(80):
        tau = math.sqrt(lo * hi)
        lo, hi = (tau, hi) if float(_jacobian_1d(mid, 0, 2, tau)[0]) > 0 else (lo, tau)
    return math.sqrt(lo * hi)


EXPLORER_TAUS = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0)


@functools.lru_cache(maxsize=None)
def _explorer_state(tau: float):
    from vsmlab.lab.explorer_state import compute_state

    return compute_state(temperature=float(tau))


def _above_one_percent(tau: float) -> bool:
    return _explorer_state(tau).rate.low > 0.01


def _grade_explorer(tau: float) -> tuple[str, str]:
    truth = next((t for t in EXPLORER_TAUS if _above_one_percent(t)), None)
    rate = _explorer_state(tau).rate
    readout = f"at tau = {tau:g} the rate is {100 * rate.rate:.2f}% [{100 * rate.low:.2f}, {100 * rate.high:.2f}]"
    if tau == truth:
        return "right", f"{readout}, entirely above 1%, and every smaller temperature's interval reaches below 1%."
    if _above_one_percent(tau):
        return "close", f"{readout}: above 1%, but a smaller temperature in the list already is"
    return "wrong", f"{readout}: its interval reaches below 1%; try larger temperatures"


EXERCISES: tuple[Exercise, ...] = (
    # 01 · mode interpolation in 1-D
    exercise("01.1", "The floor at k = 3", "easy", """
        A sample counts as hallucinated when it lies farther than k component stds from every mode, so even
        perfect samples cross that line with probability P(|z| > k), z ~ N(0, 1): the floor (6.3e-5 for k = 4).
        Predict the floor for k = 3, the hallucination rate of samples drawn from the data itself.""",
        "a share (a number in [0, 1])", share, numeric(
            _floor_k3, 0.01, 0.1, "P(|z| > 3) = 2 (1 - Phi(3)) with Phi the standard normal CDF (scipy.stats.norm.sf)",
            traps=[(lambda t: t / 2, "wrong", "that is one tail: |z| > 3 happens on both sides, double it"),
                   percent_trap()],
            explain="Moving the line from 4 to 3 stds raises the floor about 40-fold: the floor is part of every "
                    "rate the notebooks report.")),
    exercise("01.2", "Where do the steps go?", "easy", """
        The notebook's schedule vsmlab.linear(1000, 1e-3, 0.2) spends 70% of its steps at pure noise
        (alpha_bar_t < 1e-4). Predict, then compute, the share of the 1000 steps with alpha_bar_t < 1e-4 under
        the standard DDPM schedule vsmlab.linear(1000, 1e-4, 0.02).""",
        "a share (a number in [0, 1])", share, numeric(
            _pure_noise_share, 0.0015, 0.02, "compute schedule.alpha_bar for the standard schedule and take the mean of "
            "(alpha_bar < 1e-4); alpha_bar_t is the product of (1 - beta_s) up to t", relative=False,
            traps=[(lambda t: 1 - t, "wrong", "that is the share of steps *above* 1e-4")],
            explain="Under the aggressive schedule 70% of the steps are pure noise: the modes are decided in the "
                    "few steps that are left.")),
    exercise("01.3", "The ideal denoiser between two modes", "medium", f"""
        Compute the posterior mean E[x0 | x_t] at x_t = 1.5 and t = 10 for {SETUP_1D}. By symmetry one might
        guess 1.5: is it? Use E[x0 | x_t] = sum_k r_k(x_t) (mu_k + a s_k^2 / v_k (x_t - a mu_k)) with
        a = sqrt(alpha_bar_t) and v_k = a^2 s_k^2 + 1 - a^2, or Tweedie's formula
        E[x0 | x_t] = (x_t + (1 - alpha_bar_t) score(x_t)) / a with mixture.score.""",
        "a number", number, numeric(
            _posterior_mean_15, 1e-3, 0.03, "compute the responsibilities r_k = softmax_k(log N(x_t; a mu_k, v_k)) at "
            "x_t = 1.5, then the weighted per-component posterior means; or apply Tweedie's formula to mixture.score",
            traps=[(lambda t: 1.5, "wrong", "1.5 is halfway between 1 and 2, but the noised centres are a*1 and a*2 "
                    "with a < 1: x_t = 1.5 sits closer to a*2, so mode 2 gets the larger responsibility")],
            explain="Mode 2 takes about two thirds of the responsibility: at small t the ideal denoiser snaps toward "
                    "the nearer noised centre.")),
    exercise("01.4", "When does the switch get wide?", "medium", f"""
        The transition width of a denoiser between modes 1 and 2 is the spacing (1) divided by the steepest
        slope of x0_hat(x) on 1.2 < x < 1.8. For the exact denoiser E[x0 | x_t = x] of {SETUP_1D}, find the
        first step t at which the width exceeds 0.1. (dE[x0|x_t]/dx = (1 + (1 - alpha_bar_t) ds/dx) /
        sqrt(alpha_bar_t), and mixture.score_jacobian gives ds/dx exactly; finite differences of
        mixture.posterior_mean on a fine grid work too.)""",
        "a step t (a whole number in 0..999)", lambda x: whole(x, "a step t (a whole number)"), _grade_first_wide),
    exercise("01.5", "Less data, more hallucinations?", "open", """
        Predict, then measure: does a network trained on 10 times less data put more or fewer samples between
        the modes? Train with a smaller n_train (the sweep's spec_for(n_train, seed)), sample it with the same
        starting noise and read the rate with its 95% interval. Does the interval overlap the one for the full
        training set? How many samples, or training seeds, would you need to tell the two apart?"""),
    # 02 · mode interpolation in 2-D
    exercise("02.1", "Spacing after normalisation", "easy", """
        vsmlab.grid_2d() places 25 modes at spacing 2 (std 0.05; per axis the centres are -4, -2, 0, 2, 4) and
        divides the whole mixture by its global std sqrt(tr Cov / d). Derive the nearest-mode spacing after
        this normalisation.""",
        "a number", number, numeric(
            lambda: _grid().min_mode_spacing(), 1e-3, 0.03, "per axis the centres have variance (16 + 4 + 0 + 4 + 16) / 5 "
            "= 8, plus the component variance 0.05^2; divide the spacing 2 by the square root",
            traps=[(lambda t: 2.0, "wrong", "2 is the spacing before normalisation: divide by the global std")],
            explain="About 0.707 = 2 / sqrt(8): the component variance barely moves it.")),
    exercise("02.2", "Bridges", "easy", """
        A bridge joins two nearest-neighbour modes. How many bridges does the 5x5 grid have, and how many does
        the diamond (the same grid rotated by 45 degrees)? Answer with the two counts, grid first.""",
        "two whole numbers (grid count, diamond count)", _pair, _grade_bridges),
    exercise("02.3", "Which way do the bridges point?", "medium", """
        Give the angles (degrees, in [0, 180)) of the segments joining nearest-neighbour modes on the diamond.
        These are the directions along which the learned model's hallucinations should line up (compare with
        the notebook's angle histogram). mixture.neighbour_pairs() lists the pairs.""",
        "a list of angles in degrees", lambda x: numbers_list(x, "a list of angles in degrees"), _grade_angles),
    exercise("02.4", "The floor in 2-D", "medium", """
        In 2-D a perfect sample is hallucinated when it lies farther than 4 component stds from its mode, with
        probability P(||z|| > 4) for z ~ N(0, I_2). Derive it in closed form (||z||^2 has a chi-squared
        distribution with 2 degrees of freedom, an exponential distribution) and give its value.""",
        "a share (a number in [0, 1])", share, numeric(
            lambda: _grid().support_floor(4.0), 1e-3, 0.1, "||z||^2 ~ chi^2_2 is exponential with mean 2: "
            "P(||z||^2 > r) = exp(-r / 2); here r = 16",
            traps=[(lambda t: _mixture_1d().support_floor(4.0), "wrong", "that is the 1-D floor P(|z| > 4); in 2-D the "
                    "radius ||z|| has a chi distribution with 2 degrees of freedom")],
            explain="exp(-8) = 3.4e-4: five times the 1-D floor, because a 2-D Gaussian has more room in its tails.")),
    exercise("02.5", "Rotate by another angle", "open", """
        Predict where the peaks of the angle histogram would move if the grid were rotated by 30 degrees
        (vsmlab.grid_2d(rotate_deg=30)). Check the geometry with mixture.neighbour_pairs(), then, if you have
        a few minutes, train the Fourier-feature net on it and compare the learned model's hallucinations with
        your prediction. Which pairs of modes does a hallucination never connect?"""),
    # 03 · smoothness and hallucination
    exercise("03.1", "Curvature at a mode", "easy", f"""
        Near a mode the exact score at t = 0 is almost linear, s(x) ~ -(x - a mu) / v_0 with
        v_0 = alpha_bar_0 s^2 + 1 - alpha_bar_0. Give the one-sided Lipschitz constant L_+ = max_x (-ds/dx) of
        the exact score at t = 0 for {SETUP_1D}.""",
        "a number", number, numeric(
            _lipschitz_plus, 0.01, 0.1, "at a mode the score's slope is -1/v_0: the noised component variance",
            traps=[(lambda t: 1 / 0.05**2, "wrong", "1/s^2 = 400 forgets that x_t at t = 0 is already noised: "
                    "1 - alpha_bar_0 = 0.001 adds to s^2 = 0.0025")],
            explain="1/v_0 ~ 286: the curvature of -log p_0 at each mode, the L_+ column of the notebook's table.")),
    exercise("03.2", "The steepest point sits in the gap", "medium", f"""
        The global Lipschitz constant L = max_x |ds/dx| of the exact score at t = 0 is far larger than L_+.
        Find it for {SETUP_1D}: where is it reached, and what is its value? (The mixture module's docstring
        gives the Jacobian ds/dx = -sum_k r_k / v_k + sum_k r_k g_k^2 - s^2; at the midpoint between two
        noised centres r = 1/2 each.)""",
        "a number", number, numeric(
            _lipschitz_global, 0.01, 0.1, "at the midpoint between a*1 and a*2 the two responsibilities are 1/2 and "
            "g = +-(a/2)/v_0, so ds/dx = -1/v_0 + (a / (2 v_0))^2; or take max |mixture.score_jacobian| on a fine grid",
            traps=[(lambda t: _lipschitz_plus(), "wrong",
                    "that is L_+, the curvature at a mode; the steepest slope sits in the gap between two modes")],
            explain="About 2e4, at the midpoints between noised centres: the ideal denoiser's sharp switch "
                    "between modes. A network that smooths the switch has a far smaller L.")),
    exercise("03.3", "When does smoothing open a mode in the gap?", "medium", """
        Take the two-mode mixture vsmlab.evenly_spaced_1d(2, 1.0, 1.0, 0.05) (modes 1 and 2) and the
        notebook's schedule. With temperature tau the outer-product part of the score Jacobian is divided by
        tau. Derive the temperature tau* above which the slope of the smoothed score at t = 0 turns negative at
        the midpoint between the noised centres: above it the smoothed density p_tau,0 has a new mode in the
        gap. Check with mixture.score_jacobian(x, t, schedule, temperature=tau).""",
        "a number (a temperature)", number, numeric(
            _critical_temperature, 0.01, 0.1, "at the midpoint s = 0 and r = 1/2 for any tau, so "
            "ds/dx = -1/v_0 + (a / 2)^2 / (tau v_0^2); set it to 0 and solve for tau",
            explain="tau* = (a / 2)^2 / v_0 ~ 71: below it smoothing only flattens the switch; above it the "
                    "smoothed density puts a mode in the gap.")),
    exercise("03.4", "Find a setting with the explorer", "medium", f"""
        In the exact-score explorer (its defaults: DDIM with 100 steps on the standard linear schedule, 4000
        samples, seed 0), try the temperatures {', '.join(f'{t:g}' for t in EXPLORER_TAUS)}. Which is the smallest
        temperature whose hallucination rate's 95% interval lies entirely above 1%?
        (vsmlab.lab.explorer_state.compute_state(temperature=tau) gives the explorer's readouts without the widget.)""",
        "one of the temperatures listed", choice(EXPLORER_TAUS, "a temperature"), _grade_explorer),
    exercise("03.5", "Which steps matter?", "open", """
        Predict from the window experiment: if you smooth (tau = 10) only the steps where sigma_t lies between
        0.2 and 0.8 times the mode spacing, does the rate approach the rate of smoothing every step? Build the
        windowed model from the steps where schedule.sigma lies in that band and measure. What does this say
        about where a penalty on smoothness should act?"""),
)
