"""Closed-form truth of the `offshell_toy` example workspace.

A toy of the off-shell Higgs measurement (gg -> (H*) -> ZZ -> 4l) in which every density, ratio
and yield is known exactly, so that the engine's learned-ratio machinery can be checked against
the truth. Everything here is float64 numpy and vectorised.

Physics model
-------------
Features x = (m4l, cos_theta1, cos_theta2) with m4l in [220, 1000] GeV and both cosines in
[-1, 1]. Two amplitudes, each factorising into a mass part and an angular part, the signal with a
mass-dependent phase φ(m) relative to the background:

    A_B(x) = a_B(m) u_B(c1, c2)               continuum gg -> ZZ background
    A_S(x) = a_S(m) u_S(c1, c2) e^{iφ(m)}     off-shell Higgs signal
    φ(m)   = 0.35 + 0.6 / (1 + exp(-(m - 350)/20))   (absorptive top loop above 2 m_top)

    a_B(m) = (m/220)^-2.5
    a_S(m) = -g (220/m) (1 + 1.0 / (1 + exp(-(m - 350)/20)))      g = 0.30
    u_B    = 1 + 0.3 (c1^2 + c2^2)
    u_S    = 1 - 1.15 (c1^2 + c2^2) + 0.5 c1 c2

The signal amplitude is negative where u_S > 0 (about 70 % of the angular square) and
cos φ > 0 everywhere (0.35 <= φ <= 0.95), so the interference I = 2 Re(A_S A_B*) =
2 a_S u_S a_B u_B cos φ is destructive there and constructive near the corners; the factor
(1 + sigmoid) doubles the signal amplitude above the 2 m_top threshold (~350 GeV), like the top
loop does in the real process. The signal-strength model is

    p(x|mu) ∝ |sqrt(mu) A_S + A_B|^2 = mu S + sqrt(mu) I + B,
    S = |A_S|^2,  B = |A_B|^2,  SBI = |A_S + A_B|^2,  I = 2 Re(A_S A_B*) = SBI - S - B,

which is a squared modulus, strictly positive for every mu >= 0 because the phase φ never
vanishes (|.|^2 >= mu |A_S|^2 sin^2 φ). In the ATLAS (S, SBI, B) basis the same thing reads
(mu - sqrt(mu)) S + sqrt(mu) SBI + (1 - sqrt(mu)) B, which is how the engine models it with three
positive, learnable densities.

With g = 0.30 the integrated yields are S/B ~ 0.157 and I/B ~ -0.147.

The normalisation integrals factorise (mass x angles) except for SBI, which is the sum of
factorised pieces. The mass integrals use composite Gauss-Legendre (78 panels of 10 GeV, 40
nodes each: converged to ~1e-15 relative); the angular integrands are polynomials of degree <= 4
in each cosine, integrated exactly by 8-point Gauss-Legendre.

Reference hypothesis and ratios
-------------------------------
p_ref = (p_S + p_SBI + p_B) / 3 (normalised densities averaged), so every r_c = p_c / p_ref lies
in [0, 3]. The background shape systematic multiplies B by k_pm(m) = 1 +- 0.15 tanh((m-400)/150);
its per-event shape ratio is r_B±(x) = p_B±(x)/p_B(x) = k_pm(m) * int(B)/int(B±).

Yields: a luminosity constant L makes the mu = 1 yield nu_SBI^0 = L int(SBI) exactly 2000 events.
A yield-only lepton-efficiency systematic `alpha_eff` scales all processes by 1.04 (up) /
0.95 (down).
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------------------------
# Constants of the model
# ----------------------------------------------------------------------------------------------

FEATURES = ("m4l", "cos_theta1", "cos_theta2")
M_LO, M_HI = 220.0, 1000.0  # GeV, m4l range
C_LO, C_HI = -1.0, 1.0  # both cosines

M_REF = 220.0  # GeV, mass scale of the power laws
B_POWER = -2.5  # a_B = (m/M_REF)^B_POWER
G_SIGNAL = 0.30  # signal coupling g: S/B ~ 0.157, I/B ~ -0.147
TOP_THRESHOLD = 350.0  # GeV, ~2 m_top: centre of the off-shell enhancement
TOP_WIDTH = 20.0  # GeV, width of the threshold turn-on
TOP_ENHANCEMENT = 1.0  # a_S doubles above threshold
PHASE_0 = 0.35  # rad: strong phase of the signal amplitude relative to the background below threshold
PHASE_TOP = 0.6  # rad: extra phase above threshold (absorptive part of the top loop)

UB_Q = 0.3  # u_B = 1 + UB_Q (c1^2 + c2^2)
US_Q = -1.15  # u_S = 1 + US_Q (c1^2 + c2^2) + US_X c1 c2
US_X = 0.5

SHAPE_SIZE = 0.15  # k_pm(m) = 1 +- SHAPE_SIZE tanh((m - SHAPE_CENTRE)/SHAPE_WIDTH)
SHAPE_CENTRE = 400.0
SHAPE_WIDTH = 150.0

NU_SBI_TARGET = 2000.0  # expected events at mu = 1, alpha = 0
ALPHA_EFF_UP = 1.04  # yield factor of every process at alpha_eff = +1
ALPHA_EFF_DOWN = 0.95  # ... at alpha_eff = -1

PROCESSES = ("S", "SBI", "B")
SHAPE_VARIATIONS = ("B_shape_up", "B_shape_down")

# Upper bounds of the angular factors on [-1,1]^2, used by the exact rejection samplers:
# |u_B| <= 1 + 2*0.3 = 1.6 (at the corners). With US_Q < 0 and |US_X| <= 2|US_Q|,
# u_S <= 1 - (|US_Q| - |US_X|/2) q <= 1 (maximum at the centre) and u_S >= 1 + 2 US_Q - |US_X|
# (at the anti-diagonal corners (1,-1), (-1,1) for US_X > 0): |u_S| <= 1.8. `self_check` verifies
# both on a dense grid.
# A 1e-12 margin keeps the bounds valid against rounding (a looser envelope is still exact).
U_B_MAX = (1.0 + 2.0 * UB_Q) * (1.0 + 1e-12)
U_S_MAX = max(1.0, -(1.0 + 2.0 * US_Q - abs(US_X))) * (1.0 + 1e-12)


# ----------------------------------------------------------------------------------------------
# Amplitudes and unnormalised densities
# ----------------------------------------------------------------------------------------------


def split(x):
    """Split events x [..., 3] (any float dtype) into float64 (m4l, cos_theta1, cos_theta2)."""
    x = np.asarray(x)
    return (x[..., 0].astype(np.float64), x[..., 1].astype(np.float64), x[..., 2].astype(np.float64))


def top_turn_on(m):
    """Logistic turn-on of the off-shell signal enhancement at ~2 m_top."""
    return 1.0 / (1.0 + np.exp((TOP_THRESHOLD - m) / TOP_WIDTH))


def phase(m):
    """Relative phase φ(m) of the signal amplitude: A_S = a_S u_S e^{iφ}. It keeps the density
    |sqrt(mu) A_S + A_B|^2 >= (sqrt(mu) |A_S| sin φ)^2 strictly positive — as in the real
    process, whose signal and continuum amplitudes are never exactly in phase — so the
    likelihood has no exact zeros, and systematic variations do not immediately drive it negative."""
    return PHASE_0 + PHASE_TOP * top_turn_on(m)


def a_B(m):
    """Mass part of the continuum background amplitude (steeply falling)."""
    return np.power(m / M_REF, B_POWER)


def a_S(m):
    """Mass part of the signal amplitude: negative (destructive sign), falls like 1/m, doubles
    above the top-pair threshold."""
    return (-G_SIGNAL) * (M_REF / m) * (1.0 + TOP_ENHANCEMENT * top_turn_on(m))


def u_B(c1, c2):
    """Angular part of the background amplitude (positive everywhere)."""
    return 1.0 + UB_Q * (c1 * c1 + c2 * c2)


def u_S(c1, c2):
    """Angular part of the signal amplitude: positive in the centre (destructive interference
    there, since a_S < 0), negative near the corners (constructive)."""
    return 1.0 + US_Q * (c1 * c1 + c2 * c2) + US_X * (c1 * c2)


def amp_B(x):
    """Background amplitude A_B(x)."""
    m, c1, c2 = split(x)
    return a_B(m) * u_B(c1, c2)


def amp_S(x):
    """Signed modulus a_S u_S of the signal amplitude; the full amplitude is this times e^{iφ(m)}
    (see `phase`). S = amp_S^2, and the interference with A_B carries cos φ."""
    m, c1, c2 = split(x)
    return a_S(m) * u_S(c1, c2)


def shape_factor(sign, m):
    """k_pm(m) = 1 +- 0.15 tanh((m-400)/150): the background +-1 sigma shape variation."""
    s = _sign(sign)
    return 1.0 + s * SHAPE_SIZE * np.tanh((m - SHAPE_CENTRE) / SHAPE_WIDTH)


def dens_S(x):
    """Unnormalised signal density S = |A_S|^2."""
    a = amp_S(x)
    return a * a


def dens_B(x):
    """Unnormalised background density B = |A_B|^2."""
    a = amp_B(x)
    return a * a


def dens_SBI(x):
    """Unnormalised mu = 1 density SBI = |A_S + A_B|^2 = S + B + I."""
    return dens_S(x) + dens_B(x) + dens_I(x)


def dens_I(x):
    """Unnormalised, signed interference I = 2 Re(A_S A_B*) = 2 |A_S| |A_B| cos φ (signs kept)."""
    m, _, _ = split(x)
    return 2.0 * amp_S(x) * amp_B(x) * np.cos(phase(m))


def dens_mu(x, mu):
    """Unnormalised density at signal strength mu: |sqrt(mu) A_S + A_B|^2 = mu S + sqrt(mu) I + B."""
    mu = float(mu)
    return mu * dens_S(x) + np.sqrt(mu) * dens_I(x) + dens_B(x)


def dens_B_shape(sign, x):
    """Unnormalised background density at alpha_shape = +-1: B_pm = A_B^2 k_pm(m)."""
    m, _, _ = split(x)
    return dens_B(x) * shape_factor(sign, m)


def _sign(sign):
    if sign in (+1, "up", "+", "B_shape_up"):
        return 1.0
    if sign in (-1, "down", "-", "B_shape_down"):
        return -1.0
    raise ValueError(f"shape variation sign must be up/+1 or down/-1, got {sign!r}")


# ----------------------------------------------------------------------------------------------
# Normalisation integrals
# ----------------------------------------------------------------------------------------------


def _mass_nodes(panels=78, order=40):
    """Composite Gauss-Legendre nodes and weights on [M_LO, M_HI]."""
    t, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(M_LO, M_HI, panels + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    nodes = 0.5 * (hi - lo) * t[None, :] + 0.5 * (hi + lo)
    weights = 0.5 * (hi - lo) * w[None, :] * np.ones_like(nodes)
    return nodes.ravel(), weights.ravel()


def _angle_nodes(order=8):
    """Tensor Gauss-Legendre on [-1,1]^2: exact for polynomials of degree <= 15 per variable."""
    t, w = np.polynomial.legendre.leggauss(order)
    c1, c2 = np.meshgrid(t, t, indexing="ij")
    return c1.ravel(), c2.ravel(), np.outer(w, w).ravel()


def _compute_integrals():
    m, wm = _mass_nodes()
    c1, c2, wc = _angle_nodes()
    aB, aS = a_B(m), a_S(m)
    uB, uS = u_B(c1, c2), u_S(c1, c2)
    mass = {
        "SS": float(np.sum(wm * aS * aS)),
        "BB": float(np.sum(wm * aB * aB)),
        "SB": float(np.sum(wm * aS * aB * np.cos(phase(m)))),
        "BB_up": float(np.sum(wm * aB * aB * shape_factor(+1, m))),
        "BB_down": float(np.sum(wm * aB * aB * shape_factor(-1, m))),
    }
    ang = {
        "SS": float(np.sum(wc * uS * uS)),
        "BB": float(np.sum(wc * uB * uB)),
        "SB": float(np.sum(wc * uS * uB)),
    }
    S = mass["SS"] * ang["SS"]
    B = mass["BB"] * ang["BB"]
    I = 2.0 * mass["SB"] * ang["SB"]
    return {
        "S": S,
        "B": B,
        "I": I,
        "SBI": S + B + I,
        "B_shape_up": mass["BB_up"] * ang["BB"],
        "B_shape_down": mass["BB_down"] * ang["BB"],
        "mass": mass,
        "angular": ang,
    }


INTEGRALS = _compute_integrals()
"""Integrals over the full phase space of the unnormalised densities S, B, I, SBI, B_shape_up,
B_shape_down (units GeV), plus their mass and angular factors."""

LUMINOSITY = NU_SBI_TARGET / INTEGRALS["SBI"]
"""L such that nu_SBI^0 = L * int(SBI) = 2000 expected events at mu = 1."""


def integral(process):
    """Phase-space integral of the unnormalised density of `process`."""
    return INTEGRALS[process]


# ----------------------------------------------------------------------------------------------
# Normalised densities and ratios
# ----------------------------------------------------------------------------------------------

_DENS = {"S": dens_S, "SBI": dens_SBI, "B": dens_B}
# 1/int and 1/(3 int): the same constants the exact ONNX models embed, so both compute the same
# sequence of float64 operations.
INV_INTEGRAL = {c: 1.0 / INTEGRALS[c] for c in PROCESSES}
REF_WEIGHT = {c: 1.0 / (3.0 * INTEGRALS[c]) for c in PROCESSES}
SHAPE_NORM = {v: INTEGRALS["B"] / INTEGRALS[v] for v in SHAPE_VARIATIONS}


def p_S(x):
    """Normalised signal density p_S(x) = S(x)/int(S)."""
    return dens_S(x) * INV_INTEGRAL["S"]


def p_SBI(x):
    """Normalised mu = 1 density p_SBI(x) = SBI(x)/int(SBI)."""
    return dens_SBI(x) * INV_INTEGRAL["SBI"]


def p_B(x):
    """Normalised background density p_B(x) = B(x)/int(B)."""
    return dens_B(x) * INV_INTEGRAL["B"]


def p_B_shape(sign, x):
    """Normalised background density at alpha_shape = +-1."""
    name = "B_shape_up" if _sign(sign) > 0 else "B_shape_down"
    return dens_B_shape(sign, x) / INTEGRALS[name]


def p_ref(x):
    """Reference density (p_S + p_SBI + p_B)/3 against which the classifiers learn ratios."""
    return dens_S(x) * REF_WEIGHT["S"] + dens_SBI(x) * REF_WEIGHT["SBI"] + dens_B(x) * REF_WEIGHT["B"]


def nu_mu(mu):
    """Expected yield at signal strength mu (alpha = 0):
    mu S_int + sqrt(mu) I_int + B_int, times L."""
    r = np.sqrt(float(mu))
    return LUMINOSITY * (mu * INTEGRALS["S"] + r * INTEGRALS["I"] + INTEGRALS["B"])


def p_mu(x, mu):
    """Normalised full density p(x|mu) at alpha = 0."""
    integ = mu * INTEGRALS["S"] + np.sqrt(float(mu)) * INTEGRALS["I"] + INTEGRALS["B"]
    return dens_mu(x, mu) / integ


def ratio(process, x):
    """Exact density ratio r_c(x) = p_c(x)/p_ref(x) for c in S, SBI, B (values in [0, 3]);
    for B_shape_up / B_shape_down the shape ratio p_B±(x)/p_B(x) (see `shape_ratio`)."""
    if process in SHAPE_VARIATIONS:
        return shape_ratio(process, x)
    if process not in _DENS:
        raise ValueError(f"unknown process {process!r}; expected one of {PROCESSES + SHAPE_VARIATIONS}")
    m, c1, c2 = split(x)
    # Same operation order as the exact ONNX graph (see make_offshell_toy.exact_ratio_model).
    aB = a_B(m) * u_B(c1, c2)
    aS = a_S(m) * u_S(c1, c2)
    S, B = aS * aS, aB * aB
    I = 2.0 * (aS * aB) * np.cos(PHASE_0 + PHASE_TOP * top_turn_on(m))
    f = {"S": S, "SBI": (S + B) + I, "B": B}
    ref = f["S"] * REF_WEIGHT["S"] + f["SBI"] * REF_WEIGHT["SBI"] + f["B"] * REF_WEIGHT["B"]
    return (f[process] * INV_INTEGRAL[process]) / ref


def shape_ratio(sign, x):
    """Per-event shape ratio r_B±(x) = p_B±(x)/p_B(x) = k_pm(m) int(B)/int(B±) (depends on m only)."""
    name = "B_shape_up" if _sign(sign) > 0 else "B_shape_down"
    m, _, _ = split(x)
    return shape_factor(sign, m) * SHAPE_NORM[name]


def yields():
    """Nominal expected yields (alpha = 0) and yield factors.

    nu_S, nu_SBI, nu_B: L int(S|SBI|B), the nominal yields of the three (S, SBI, B)-basis processes;
    nu_I: the signed interference yield; nu_B_shape_up/down: background yield at alpha_shape = +-1;
    B_shape_*_factor: nu_B±/nu_B; alpha_eff_up/down: yield factors of the efficiency systematic.
    nu(mu) = (mu - sqrt mu) nu_S + sqrt(mu) nu_SBI + (1 - sqrt mu) nu_B.
    """
    return {
        "luminosity": LUMINOSITY,
        "nu_S": LUMINOSITY * INTEGRALS["S"],
        "nu_SBI": LUMINOSITY * INTEGRALS["SBI"],
        "nu_B": LUMINOSITY * INTEGRALS["B"],
        "nu_I": LUMINOSITY * INTEGRALS["I"],
        "nu_B_shape_up": LUMINOSITY * INTEGRALS["B_shape_up"],
        "nu_B_shape_down": LUMINOSITY * INTEGRALS["B_shape_down"],
        "B_shape_up_factor": INTEGRALS["B_shape_up"] / INTEGRALS["B"],
        "B_shape_down_factor": INTEGRALS["B_shape_down"] / INTEGRALS["B"],
        "alpha_eff_up": ALPHA_EFF_UP,
        "alpha_eff_down": ALPHA_EFF_DOWN,
    }


def destructive_fraction_uniform(n=2_000_000, seed=1):
    """Fraction of the angular square where the interference is destructive (u_S > 0; independent
    of m because a_S < 0 and u_B > 0 everywhere). Monte Carlo estimate."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1.0, 1.0, size=(2, n))
    return float(np.mean(u_S(c[0], c[1]) > 0.0))


# ----------------------------------------------------------------------------------------------
# Exact samplers (rejection sampling from the closed-form densities)
# ----------------------------------------------------------------------------------------------


def _powerlaw(k, n, rng):
    """Draw m from p(m) ∝ m^-k on [M_LO, M_HI] by inverting the CDF (k != 1)."""
    e = 1.0 - k
    lo, hi = M_LO**e, M_HI**e
    return (lo + rng.random(n) * (hi - lo)) ** (1.0 / e)


def _accept(prob, rng):
    """Bernoulli acceptance; insists the envelope really bounds the target (exactness)."""
    if prob.size and (np.max(prob) > 1.0 or np.min(prob) < 0.0):
        raise AssertionError(f"rejection envelope violated: acceptance probability {np.max(prob)}")
    return rng.random(prob.size) < prob


def _rejection(draw, n, rng, expected_eff):
    """Collect n accepted events from `draw(k, rng) -> accepted events` in vectorised batches."""
    out, have = [], 0
    while have < n:
        k = int((n - have) / expected_eff * 1.1) + 1000
        acc = draw(k, rng)
        out.append(acc)
        have += len(acc)
    return np.concatenate(out)[:n]


def _sample_m_B(n, rng):
    """m from a_B(m)^2 = (m/220)^-5: an exact truncated power law."""
    return _powerlaw(-2.0 * B_POWER, n, rng)


def _sample_m_S(n, rng):
    """m from a_S(m)^2 ∝ m^-2 (1 + sigmoid)^2: power-law proposal, accept (1+sigmoid)^2/4."""

    def draw(k, rng):
        m = _powerlaw(2.0, k, rng)
        env = (1.0 + TOP_ENHANCEMENT) ** 2
        return m[_accept((1.0 + TOP_ENHANCEMENT * top_turn_on(m)) ** 2 / env, rng)]

    return _rejection(draw, n, rng, 0.5)


def _sample_m_B_shape(sign, n, rng):
    """m from a_B(m)^2 k_pm(m): power-law proposal, accept k_pm/(1 + 0.15)."""

    def draw(k, rng):
        m = _powerlaw(-2.0 * B_POWER, k, rng)
        return m[_accept(shape_factor(sign, m) / (1.0 + SHAPE_SIZE), rng)]

    return _rejection(draw, n, rng, 0.8)


def _sample_angles(u, umax, n, rng):
    """(c1, c2) from u(c1,c2)^2 on [-1,1]^2: uniform proposal, accept u^2/umax^2."""

    def draw(k, rng):
        c = rng.uniform(C_LO, C_HI, size=(k, 2))
        v = u(c[:, 0], c[:, 1])
        return c[_accept(v * v / (umax * umax), rng)]

    return _rejection(draw, n, rng, 0.2)


def _stack(m, c):
    return np.column_stack([m, c[:, 0], c[:, 1]])


def sample_mu(mu, n, rng):
    """n events exactly from p(x|mu) ∝ |sqrt(mu) A_S + A_B|^2 = mu S + sqrt(mu) I + B.

    Envelope: |sqrt(mu) A_S + A_B|^2 <= (sqrt(mu) |A_S| + |A_B|)^2 <= 2 (mu a_S^2 U_S^2 + a_B^2 U_B^2)
    with U the bounds of |u| (the phase only lowers the target).
    Proposal: m from the mixture ∝ mu a_S^2 U_S^2 + a_B^2 U_B^2 (each component sampled exactly),
    angles uniform; accept with target/envelope."""
    mu = float(mu)
    ms, mb = INTEGRALS["mass"]["SS"], INTEGRALS["mass"]["BB"]
    w_s = mu * ms * U_S_MAX**2
    frac_s = w_s / (w_s + mb * U_B_MAX**2)

    def draw(k, rng):
        k_s = rng.binomial(k, frac_s)
        m = np.concatenate([_sample_m_S(k_s, rng), _sample_m_B(k - k_s, rng)])
        c = rng.uniform(C_LO, C_HI, size=(k, 2))
        x = _stack(m, c)
        target = dens_mu(x, mu)
        env = 2.0 * (mu * a_S(m) ** 2 * U_S_MAX**2 + a_B(m) ** 2 * U_B_MAX**2)
        acc = x[_accept(target / env, rng)]
        return acc[rng.permutation(len(acc))]  # mixture components are concatenated: shuffle

    return _rejection(draw, n, rng, 0.05)


def sample(process, n, rng):
    """n events [n, 3] (float64) drawn exactly from the density of `process`:
    S, SBI (= mu 1), B, B_shape_up, B_shape_down, or ref (the equal mixture of S, SBI, B)."""
    if process == "S":
        return _stack(_sample_m_S(n, rng), _sample_angles(u_S, U_S_MAX, n, rng))
    if process == "B":
        return _stack(_sample_m_B(n, rng), _sample_angles(u_B, U_B_MAX, n, rng))
    if process == "SBI":
        return sample_mu(1.0, n, rng)
    if process in SHAPE_VARIATIONS:
        return _stack(_sample_m_B_shape(process, n, rng), _sample_angles(u_B, U_B_MAX, n, rng))
    if process == "ref":
        counts = rng.multinomial(n, [1.0 / 3.0] * 3)
        x = np.concatenate([sample(c, k, rng) for c, k in zip(PROCESSES, counts)])
        return x[rng.permutation(n)]
    raise ValueError(f"unknown process {process!r}")


# ----------------------------------------------------------------------------------------------
# Self-check
# ----------------------------------------------------------------------------------------------


def self_check():
    """Cross-check the factorised quadrature against scipy's adaptive quadrature and the angular
    bounds against a dense grid. Returns the worst relative integral discrepancy."""
    from scipy import integrate

    worst = 0.0
    for key, f in {
        "SS": lambda m: a_S(m) ** 2,
        "BB": lambda m: a_B(m) ** 2,
        "SB": lambda m: a_S(m) * a_B(m) * np.cos(phase(m)),
        "BB_up": lambda m: a_B(m) ** 2 * shape_factor(+1, m),
    }.items():
        ref, _ = integrate.quad(f, M_LO, M_HI, epsabs=0, epsrel=1e-13, limit=500, points=[TOP_THRESHOLD])
        worst = max(worst, abs(INTEGRALS["mass"][key] / ref - 1.0))
    g = np.linspace(-1, 1, 2001)
    c1, c2 = np.meshgrid(g, g)
    assert np.max(np.abs(u_S(c1, c2))) <= U_S_MAX + 1e-12
    assert np.max(np.abs(u_B(c1, c2))) <= U_B_MAX + 1e-12
    return worst


if __name__ == "__main__":
    import json

    print("mass-integral check vs scipy.quad, worst relative difference:", self_check())
    print(json.dumps(yields(), indent=2))
    print("I/B =", INTEGRALS["I"] / INTEGRALS["B"], " S/B =", INTEGRALS["S"] / INTEGRALS["B"])
    print("destructive fraction of the angular square:", destructive_fraction_uniform())
