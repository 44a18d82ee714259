"""Closed-form truth of the `offshell_2d` example workspace: off-shell ZZ with two signal strengths.

The `offshell_toy` model (`offshell_truth.py`: gg -> (H*) -> ZZ, POI mu_ggF) plus an electroweak
production (VBF-like qq -> qq (H*) -> ZZ, POI mu_EW) with its own signal and EW-background
amplitudes. The two productions have different initial states, so they add incoherently:

    dσ(x|mu_g, mu_V) = L ( |sqrt(mu_g) A_S + A_B|^2 + |sqrt(mu_V) A_VS + A_VB|^2 ),

and each is written in its own (S, SBI, B) basis with coefficients (mu - sqrt mu, sqrt mu,
1 - sqrt mu): six positive basis densities S_g, SBI_g, B_g (exactly offshell_truth's S, SBI, B)
and S_V, SBI_V, B_V. Features x = (m4l, cos_theta1, cos_theta2) as there.

EW amplitudes (mass part x angular part, the signal with a constant phase φ_V):

    A_VB(x) = a_VB(m) u_VB(c1, c2),   a_VB(m) = K (m/220)^-1.5        harder than gg -> ZZ's ^-2.5
    A_VS(x) = a_VS(m) u_VS(c1, c2) e^{iφ_V},  a_VS(m) = -G_V K (220/m)^0.75
    u_VB = 1 - 0.5 c1 c2                      (in [0.5, 1.5])
    u_VS = 1 + 0.8 (c1^2 + c2^2) + 1.2 c1 c2  (in [1, 3.8]: peaks at the diagonal corners ±(1, 1))
    φ_V  = 1.2

a_VS < 0 and u_VS, u_VB > 0, so the EW interference is destructive everywhere (as the
unitarity-restoring cancellation between VBF Higgs and EW VV scattering), and it grows with m
because the signal amplitude falls more slowly than the background's. The ggF signal sits at
the top threshold, the angular centre and the anti-diagonal corners (|u_S| = 1.8 at ±(1, -1),
0.8 at ±(1, 1)); the EW signal at high m4l and the diagonal corners: the two POIs are
distinguishable. The EW density is positive for every
mu_V >= 0 (|.|^2 >= mu_V |A_VS|^2 sin^2 φ_V), the ggF one likewise (offshell_truth.phase), so
p(x|mu_g, mu_V) > 0 on the whole quadrant.

L is offshell_truth's (nu_SBI_g = 2000 events at mu_g = 1); K makes nu_SBI_V = 1000 events at
mu_V = 1; G_V = 0.25 and φ_V = 1.2 give S_V/B_V ~ 0.36, I_V/B_V ~ -0.37. EW mass integrals by
the same composite Gauss-Legendre quadrature as offshell_truth; the angular integrands are
polynomials of degree <= 4 per cosine, exact with 8 points.

Reference hypothesis: p_ref = (1/6) Σ_b p_b over the six normalised basis densities, so every
ratio r_b = p_b/p_ref lies in [0, 6].
"""

from __future__ import annotations

import numpy as np

import offshell_truth as G

FEATURES = G.FEATURES
GGF = ("S_g", "SBI_g", "B_g")
EW = ("S_V", "SBI_V", "B_V")
PROCESSES = GGF + EW
POIS = ("mu_ggF", "mu_EW")

VB_POWER = -1.5  # a_VB ∝ (m/220)^VB_POWER
VS_POWER = 0.75  # a_VS ∝ (220/m)^VS_POWER
G_EW = 0.25  # EW signal coupling relative to the EW background: S_V/B_V ~ 0.36
UVB_X = -0.5  # u_VB = 1 + UVB_X c1 c2
UVS_Q = 0.8  # u_VS = 1 + UVS_Q (c1^2 + c2^2) + UVS_X c1 c2
UVS_X = 1.2
PHASE_EW = 1.2  # rad, strong phase of the EW signal amplitude: I_V/B_V ~ -0.37
NU_SBI_EW_TARGET = 1000.0  # EW events at mu_EW = 1
# Upper bounds of the EW angular factors on [-1, 1]^2 (self_check verifies them on a grid).
U_VB_MAX = (1.0 + abs(UVB_X)) * (1.0 + 1e-12)
U_VS_MAX = (1.0 + 2.0 * UVS_Q + abs(UVS_X)) * (1.0 + 1e-12)


# ----------------------------------------------------------------------------------------------
# EW amplitudes and unnormalised densities (the ggF ones are offshell_truth's)
# ----------------------------------------------------------------------------------------------


def a_VB_shape(m):
    """Mass part of the EW background amplitude, before the scale K."""
    return np.power(m / G.M_REF, VB_POWER)


def a_VS_shape(m):
    """Mass part of the EW signal amplitude, before the scale K: negative (destructive)."""
    return (-G_EW) * np.power(G.M_REF / m, VS_POWER)


def u_VB(c1, c2):
    return 1.0 + UVB_X * (c1 * c2)


def u_VS(c1, c2):
    return 1.0 + UVS_Q * (c1 * c1 + c2 * c2) + UVS_X * (c1 * c2)


def _ew_mass_integrals():
    m, wm = G._mass_nodes()
    aB, aS = a_VB_shape(m), a_VS_shape(m)
    return {"SS": float(np.sum(wm * aS * aS)), "BB": float(np.sum(wm * aB * aB)),
            "SB": float(np.sum(wm * aS * aB)) * np.cos(PHASE_EW)}


def _ew_angular_integrals():
    c1, c2, wc = G._angle_nodes()
    uB, uS = u_VB(c1, c2), u_VS(c1, c2)
    return {"SS": float(np.sum(wc * uS * uS)), "BB": float(np.sum(wc * uB * uB)), "SB": float(np.sum(wc * uS * uB))}


def _ew_scale():
    """K^2 such that L K^2 int(SBI_V) = NU_SBI_EW_TARGET."""
    m, a = _ew_mass_integrals(), _ew_angular_integrals()
    sbi = m["SS"] * a["SS"] + m["BB"] * a["BB"] + 2.0 * m["SB"] * a["SB"]
    return NU_SBI_EW_TARGET / (G.LUMINOSITY * sbi)


EW_SCALE2 = _ew_scale()
EW_SCALE = float(np.sqrt(EW_SCALE2))
"""K: the EW amplitudes' common scale."""


def a_VB(m):
    return EW_SCALE * a_VB_shape(m)


def a_VS(m):
    return EW_SCALE * a_VS_shape(m)


def densities(x):
    """The six unnormalised basis densities at events x [..., 3], in the operation order of the
    exact ONNX models (make_offshell2d.exact_ratio_model)."""
    m, c1, c2 = G.split(x)
    aB = G.a_B(m) * G.u_B(c1, c2)
    aS = G.a_S(m) * G.u_S(c1, c2)
    S, B = aS * aS, aB * aB
    I = 2.0 * (aS * aB) * np.cos(G.PHASE_0 + G.PHASE_TOP * G.top_turn_on(m))
    vB = a_VB(m) * u_VB(c1, c2)
    vS = a_VS(m) * u_VS(c1, c2)
    SV, BV = vS * vS, vB * vB
    IV = (2.0 * np.cos(PHASE_EW)) * (vS * vB)
    return {"S_g": S, "SBI_g": (S + B) + I, "B_g": B, "S_V": SV, "SBI_V": (SV + BV) + IV, "B_V": BV}


def dens_mu(x, mu_g, mu_v):
    """Unnormalised density at (mu_g, mu_V): |sqrt(mu_g) A_S + A_B|^2 + |sqrt(mu_V) A_VS + A_VB|^2."""
    f = densities(x)
    w = weights(mu_g, mu_v)
    return sum(w[k] * f[b] for k, b in enumerate(PROCESSES))


# ----------------------------------------------------------------------------------------------
# Integrals, yields, weights, ratios
# ----------------------------------------------------------------------------------------------


def _compute_integrals():
    mass, ang = _ew_mass_integrals(), _ew_angular_integrals()
    SV = EW_SCALE2 * mass["SS"] * ang["SS"]
    BV = EW_SCALE2 * mass["BB"] * ang["BB"]
    IV = EW_SCALE2 * 2.0 * mass["SB"] * ang["SB"]
    gi = G.INTEGRALS
    return {"S_g": gi["S"], "SBI_g": gi["SBI"], "B_g": gi["B"], "I_g": gi["I"],
            "S_V": SV, "SBI_V": SV + BV + IV, "B_V": BV, "I_V": IV,
            "ew_mass": mass, "ew_angular": ang}


INTEGRALS = _compute_integrals()
LUMINOSITY = G.LUMINOSITY
INV_INTEGRAL = {b: 1.0 / INTEGRALS[b] for b in PROCESSES}
REF_WEIGHT = {b: 1.0 / (6.0 * INTEGRALS[b]) for b in PROCESSES}


def integral(process):
    return INTEGRALS[process]


def weights(mu_g, mu_v):
    """Basis coefficients (mu - sqrt mu, sqrt mu, 1 - sqrt mu) of each production, in PROCESSES order."""
    rg, rv = np.sqrt(float(mu_g)), np.sqrt(float(mu_v))
    return np.array([mu_g - rg, rg, 1.0 - rg, mu_v - rv, rv, 1.0 - rv])


def yields():
    """Nominal yields L int(b) of the six basis samples, and the signed interference yields."""
    out = {b: LUMINOSITY * INTEGRALS[b] for b in PROCESSES}
    out.update({"I_g": LUMINOSITY * INTEGRALS["I_g"], "I_V": LUMINOSITY * INTEGRALS["I_V"]})
    return out


def nu_total(mu_g, mu_v):
    nu = yields()
    return float(sum(w * nu[b] for w, b in zip(weights(mu_g, mu_v), PROCESSES)))


def ratio(process, x):
    """Exact r_b(x) = p_b(x)/p_ref(x), p_ref = (1/6) Σ_b p_b."""
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; expected one of {PROCESSES}")
    f = densities(x)
    ref = f[PROCESSES[0]] * REF_WEIGHT[PROCESSES[0]]
    for b in PROCESSES[1:]:
        ref = ref + f[b] * REF_WEIGHT[b]
    return (f[process] * INV_INTEGRAL[process]) / ref


# ----------------------------------------------------------------------------------------------
# Exact samplers
# ----------------------------------------------------------------------------------------------


def _sample_m_VB(n, rng):
    """m from a_VB^2 ∝ m^-3: a truncated power law."""
    return G._powerlaw(-2.0 * VB_POWER, n, rng)


def _sample_m_VS(n, rng):
    """m from a_VS^2 ∝ m^-1.5: a truncated power law."""
    return G._powerlaw(2.0 * VS_POWER, n, rng)


def sample_ew(mu_v, n, rng):
    """n events from |sqrt(mu_V) A_VS + A_VB|^2, by rejection from the envelope
    2 (mu_V a_VS^2 U_VS^2 + a_VB^2 U_VB^2) (as offshell_truth.sample_mu)."""
    mu_v = float(mu_v)
    mass = INTEGRALS["ew_mass"]
    w_s = mu_v * mass["SS"] * U_VS_MAX**2
    frac_s = w_s / (w_s + mass["BB"] * U_VB_MAX**2)

    def draw(k, rng):
        k_s = rng.binomial(k, frac_s)
        m = np.concatenate([_sample_m_VS(k_s, rng), _sample_m_VB(k - k_s, rng)])
        c = rng.uniform(G.C_LO, G.C_HI, size=(k, 2))
        vS, vB = a_VS(m) * u_VS(c[:, 0], c[:, 1]), a_VB(m) * u_VB(c[:, 0], c[:, 1])
        target = mu_v * vS * vS + np.sqrt(mu_v) * (2.0 * np.cos(PHASE_EW)) * vS * vB + vB * vB
        env = 2.0 * (mu_v * a_VS(m) ** 2 * U_VS_MAX**2 + a_VB(m) ** 2 * U_VB_MAX**2)
        acc = np.column_stack([m, c])[G._accept(target / env, rng)]
        return acc[rng.permutation(len(acc))]

    return G._rejection(draw, n, rng, 0.05)


def sample(process, n, rng):
    """n events [n, 3] drawn exactly from the density of basis sample `process`, or `ref`."""
    if process in GGF:
        return G.sample(process[:-2], n, rng)
    if process == "S_V":
        return np.column_stack([_sample_m_VS(n, rng), G._sample_angles(u_VS, U_VS_MAX, n, rng)])
    if process == "B_V":
        return np.column_stack([_sample_m_VB(n, rng), G._sample_angles(u_VB, U_VB_MAX, n, rng)])
    if process == "SBI_V":
        return sample_ew(1.0, n, rng)
    if process == "ref":
        counts = rng.multinomial(n, [1.0 / 6.0] * 6)
        x = np.concatenate([sample(b, k, rng) for b, k in zip(PROCESSES, counts)])
        return x[rng.permutation(n)]
    raise ValueError(f"unknown process {process!r}")


def sample_at(mu_g, mu_v, n, rng):
    """n events from p(x|mu_g, mu_V): the ggF/EW split is binomial in their yields."""
    nu = yields()
    nu_g = (mu_g - np.sqrt(mu_g)) * nu["S_g"] + np.sqrt(mu_g) * nu["SBI_g"] + (1.0 - np.sqrt(mu_g)) * nu["B_g"]
    n_g = int(rng.binomial(n, nu_g / nu_total(mu_g, mu_v)))
    x = np.concatenate([G.sample_mu(mu_g, n_g, rng), sample_ew(mu_v, n - n_g, rng)])
    return x[rng.permutation(n)]


def self_check():
    """EW mass integrals against scipy's adaptive quadrature (worst relative difference) and the
    angular bounds on a dense grid."""
    from scipy import integrate

    mass = INTEGRALS["ew_mass"]
    worst = 0.0
    for key, f in {"SS": lambda m: a_VS_shape(m) ** 2, "BB": lambda m: a_VB_shape(m) ** 2,
                   "SB": lambda m: a_VS_shape(m) * a_VB_shape(m) * np.cos(PHASE_EW)}.items():
        ref, _ = integrate.quad(f, G.M_LO, G.M_HI, epsabs=0, epsrel=1e-13, limit=500)
        worst = max(worst, abs(mass[key] / ref - 1.0))
    g = np.linspace(-1, 1, 2001)
    c1, c2 = np.meshgrid(g, g)
    assert np.max(np.abs(u_VS(c1, c2))) <= U_VS_MAX and np.min(u_VS(c1, c2)) > 0.0
    assert np.max(np.abs(u_VB(c1, c2))) <= U_VB_MAX and np.min(u_VB(c1, c2)) > 0.0
    return worst


if __name__ == "__main__":
    import json

    print("EW mass-integral check vs scipy.quad, worst relative difference:", self_check())
    print(json.dumps(yields(), indent=2))
    print("S_V/B_V =", INTEGRALS["S_V"] / INTEGRALS["B_V"], " I_V/B_V =", INTEGRALS["I_V"] / INTEGRALS["B_V"])
