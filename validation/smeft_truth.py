"""Closed-form truth of the `smeft_toy` example workspace (two Wilson coefficients c1, c2).

Seed 004's toy, p(x|θ) = (N(0, 1.22) + θ² N(α, 0.71)) / (1 + θ²), is the square of an amplitude
sum with no interference. Here it is generalised to two coefficients *with* interference, so
that every term of a quadratic SMEFT morphing basis appears. Features x = (x1, x2), both on the
real line; three real amplitudes, each a square root of Gaussians times a polynomial in x2:

    A0(x) = sqrt(N(x1; 0, 1.22) N(x2; 0, 1))                          SM
    A1(x) = g sqrt(N(x1; 1.0, 0.71) N(x2; 0, 1))                      operator 1 (seed 004's term)
    A2(x) = g 0.8 (x2 + 0.5) sqrt(N(x1; -0.8, 0.71) N(x2; 0, 1))      operator 2 (x2-odd part: CP-odd-like)

with g = 0.1 (the operators' scale 1/Λ², so that 2 000 SM events constrain c to a few tenths).

    dσ(x|c) = L |A0 + c1 A1 + c2 A2|²
            = L (A0² + 2 c1 A0A1 + 2 c2 A0A2 + c1² A1² + c2² A2² + 2 c1 c2 A1A2)

The six basis samples are squared moduli at six benchmark points, all positive densities:

    SM = A0²  (c = (0,0))        L1 = (A0 + 4 A1)²  (c = (4,0))   L2 = (A0 + 4 A2)²  (c = (0,4))
    Q1 = A1²  (pure c1²)         Q2 = A2²  (pure c2²)             X  = (A1 + A2)²  (cross term)

and the morphing weights that rebuild dσ(x|c) from them are

    w_SM = 1 - c1/4 - c2/4     w_L1 = c1/4     w_L2 = c2/4
    w_Q1 = c1² - 4 c1 - c1 c2     w_Q2 = c2² - 4 c2 - c1 c2     w_X = c1 c2

(negative in most of the plane). The linear benchmarks sit at c = 4, where the operator's
amplitude is 0.4 of the SM's: at c = 1 their samples would differ from SM by 17 % only, and the
interference, a difference of learned ratios, would drown in the ensembles' errors.
Truncated at O(1/Λ²), the linear SMEFT model keeps A0² + 2 c1 A0A1 + 2 c2 A0A2 only:
w_SM = 1 - c1/4 - c2/4, w_L1 = c1/4, w_L2 = c2/4, w_Q1 = -4 c1, w_Q2 = -4 c2, w_X = 0. That density is A0 (A0 + 2 c1 A1 + 2 c2 A2), negative wherever the interference
outweighs the SM; the quadratic one is a square, never negative.

Every integral is closed form: ∫ sqrt(N(x1; m, s) N(x1; m', s')) dx1 is the Bhattacharyya
coefficient sqrt(2 s s' / (s² + s'²)) exp(-(m - m')² / (4 (s² + s'²))), and the x2 factors are
moments of N(0, 1). Everything here is float64 numpy and vectorised.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("x1", "x2")
# x1 centres and widths of the three amplitudes; A2's x2 polynomial beta (x2 + gamma).
CENTRE = (0.0, 1.0, -0.8)
WIDTH = (1.22, 0.71, 0.71)
BETA, GAMMA = 0.8, 0.5
SCALE = (1.0, 0.1, 0.1)  # g: A1 and A2 are suppressed by 1/Λ²
BENCHMARK = 4.0  # c of the linear benchmark samples L1, L2
LUMINOSITY = 2000.0  # SM yield: ∫ A0² = 1
# Basis samples: name -> amplitude combination (v0, v1, v2), intensity (v . A)².
BASIS = {
    "SM": (1.0, 0.0, 0.0),
    "L1": (1.0, BENCHMARK, 0.0),
    "L2": (1.0, 0.0, BENCHMARK),
    "Q1": (0.0, 1.0, 0.0),
    "Q2": (0.0, 0.0, 1.0),
    "X": (0.0, 1.0, 1.0),
}
PROCESSES = tuple(BASIS)


def weights(c1, c2, linear=False):
    """Morphing weights w_b(c) of the basis samples, in PROCESSES order."""
    a = BENCHMARK
    if linear:
        return np.array([1.0 - c1 / a - c2 / a, c1 / a, c2 / a, -a * c1, -a * c2, 0.0])
    return np.array([1.0 - c1 / a - c2 / a, c1 / a, c2 / a, c1 * c1 - a * c1 - c1 * c2, c2 * c2 - a * c2 - c1 * c2,
                     c1 * c2])


def _x2_factor(k, x2):
    return BETA * (x2 + GAMMA) if k == 2 else np.ones_like(x2)


def amplitudes(x):
    """A0, A1, A2 at events x [N, 2] (float64): array [3, N]."""
    x = np.asarray(x, dtype=np.float64)
    x1, x2 = x[:, 0], x[:, 1]
    out = []
    for k in range(3):
        m, s = CENTRE[k], WIDTH[k]
        root_x1 = (2.0 * np.pi * s * s) ** -0.25 * np.exp(-((x1 - m) ** 2) / (4.0 * s * s))
        root_x2 = (2.0 * np.pi) ** -0.25 * np.exp(-(x2 * x2) / 4.0)
        out.append(SCALE[k] * _x2_factor(k, x2) * root_x1 * root_x2)
    return np.array(out)


def overlap(j, k):
    """∫ A_j A_k dx, closed form."""
    sj, sk, mj, mk = WIDTH[j], WIDTH[k], CENTRE[j], CENTRE[k]
    bc = np.sqrt(2.0 * sj * sk / (sj * sj + sk * sk)) * np.exp(-((mj - mk) ** 2) / (4.0 * (sj * sj + sk * sk)))
    # x2 moments under N(0, 1): E[1] = 1, E[beta (x2 + gamma)] = beta gamma,
    # E[beta² (x2 + gamma)²] = beta² (1 + gamma²).
    n2 = sum(k2 == 2 for k2 in (j, k))
    moment = (1.0, BETA * GAMMA, BETA * BETA * (1.0 + GAMMA * GAMMA))[n2]
    return float(SCALE[j] * SCALE[k] * bc * moment)


def integral(name):
    """∫ (v . A)² dx of basis sample `name`."""
    v = BASIS[name]
    return sum(v[j] * v[k] * overlap(j, k) for j in range(3) for k in range(3))


def yields():
    """Expected yield ν_b = L ∫ intensity_b of each basis sample."""
    return {b: LUMINOSITY * integral(b) for b in PROCESSES}


def density(name, x):
    """Normalised density p_b(x) of basis sample `name`."""
    v = np.asarray(BASIS[name])
    return (v @ amplitudes(x)) ** 2 / integral(name)


def reference(x):
    """Reference density p_ref = (1/6) Σ_b p_b, which the ratios are taken against."""
    return sum(density(b, x) for b in PROCESSES) / len(PROCESSES)


def ratio(name, x):
    """Exact ratio r_b(x) = p_b(x) / p_ref(x)."""
    return density(name, x) / reference(x)


def intensity(c1, c2, x, linear=False):
    """dσ(x|c) / dx = Σ_b w_b(c) ν_b p_b(x) (events per unit x)."""
    nu = yields()
    w = weights(c1, c2, linear)
    return sum(w[i] * nu[b] * density(b, x) for i, b in enumerate(PROCESSES))


def nu_total(c1, c2, linear=False):
    """Expected number of events ν(c) = Σ_b w_b(c) ν_b."""
    nu = yields()
    return float(sum(w * nu[b] for w, b in zip(weights(c1, c2, linear), PROCESSES)))


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


def _sample_amplitude_squared(k, n, rng):
    """n events from A_k² (normalised): x1 Gaussian, x2 from N(0,1) times the x2 factor²."""
    x1 = rng.normal(CENTRE[k], WIDTH[k], n)
    if k != 2:
        return np.column_stack([x1, rng.normal(0.0, 1.0, n)])
    # (x2 + γ)² N(x2) ≤ 2 (x2² + γ²) N(x2): propose from the mixture of x2² N (a signed χ₃)
    # and N, weights 1 : γ², and accept with (x2 + γ)² / (2 (x2² + γ²)).
    x2 = np.empty(0)
    while len(x2) < n:
        m = 2 * (n - len(x2)) + 16
        chi = np.sqrt(rng.chisquare(3, m)) * rng.choice([-1.0, 1.0], m)
        gauss = rng.normal(0.0, 1.0, m)
        proposal = np.where(rng.random(m) < 1.0 / (1.0 + GAMMA * GAMMA), chi, gauss)
        keep = rng.random(m) < (proposal + GAMMA) ** 2 / (2.0 * (proposal * proposal + GAMMA * GAMMA))
        x2 = np.concatenate([x2, proposal[keep]])
    return np.column_stack([x1, x2[:n]])


def sample(name, n, rng):
    """n events [n, 2] float64 from basis sample `name`, or from the reference mixture ("ref")."""
    if name == "ref":
        which = rng.integers(0, len(PROCESSES), n)
        out = np.empty((n, 2))
        for i, b in enumerate(PROCESSES):
            out[which == i] = sample(b, int(np.sum(which == i)), rng)
        return out
    return sample_combination(BASIS[name], n, rng)


def sample_at(c1, c2, n, rng):
    """n events from p(x|c) ∝ |A0 + c1 A1 + c2 A2|²."""
    return sample_combination((1.0, c1, c2), n, rng)


def sample_combination(v, n, rng):
    """n events [n, 2] from (Σ_k v_k A_k)², by rejection: (Σ_k v_k A_k)² ≤ n_terms Σ_k v_k² A_k²,
    so propose from the mixture of the A_k² (weights v_k² ∫A_k²) and accept with the ratio."""
    v = np.asarray(v, dtype=np.float64)
    terms = [k for k in range(3) if v[k] != 0.0]
    mix = np.array([v[k] ** 2 * overlap(k, k) for k in terms])
    out = np.empty((0, 2))
    while len(out) < n:
        m = 2 * len(terms) * (n - len(out)) + 16
        which = rng.choice(len(terms), m, p=mix / mix.sum())
        x = np.empty((m, 2))
        for i, k in enumerate(terms):
            x[which == i] = _sample_amplitude_squared(k, int(np.sum(which == i)), rng)
        a = amplitudes(x)
        accept = (v @ a) ** 2 / (len(terms) * ((v * v) @ (a * a)))
        out = np.concatenate([out, x[rng.random(m) < accept]])
    return out[:n]
