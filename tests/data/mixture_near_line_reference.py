#!/usr/bin/env python3
"""Reference natural gradients of the two-component mixture near its singular line mu1 = mu2.

Independent of the Rust code: plain theta-coordinates, the Fisher matrix and the population-loss
gradient as mpmath integrals at 60 significant digits, the 2x2 solve in the same precision.
Writes tests/data/mixture_near_line_reference.json, read by tests/mixture_near_line.rs.
Run: python3 tests/data/mixture_near_line_reference.py   (needs mpmath; ~1 min)
"""
import json, math, os
import mpmath as mp

mp.mp.dps = 60

def case(sigma, w, target, m, delta):
    # the same IEEE double operations as the Rust test: theta = (M - (1-w) delta, M + w delta)
    return case_theta(sigma, w, target, m - (1.0 - w) * delta, m + w * delta)

def case_theta(sigma, w, target, mu1, mu2):
    S, W = mp.mpf(sigma), mp.mpf(w)
    a1, a2 = mp.mpf(mu1), mp.mpf(mu2)
    t1, t2 = mp.mpf(target[0]), mp.mpf(target[1])
    norm = 1 / (S * mp.sqrt(2 * mp.pi))
    def comps(x, m1, m2):
        return W * mp.exp(-(x - m1) ** 2 / (2 * S * S)) * norm, (1 - W) * mp.exp(-(x - m2) ** 2 / (2 * S * S)) * norm
    def scores(x):
        A, B = comps(x, a1, a2)
        p = A + B
        return A / p * (x - a1) / S**2, B / p * (x - a2) / S**2, p
    lo, hi = min(a1, t1, t2) - 40 * S, max(a2, t1, t2) + 40 * S
    pts = sorted({lo, a1, a2, t1, t2, hi})
    def integ(f):
        return mp.quad(f, pts)
    f11 = integ(lambda x: (lambda s: s[0] * s[0] * s[2])(scores(x)))
    f12 = integ(lambda x: (lambda s: s[0] * s[1] * s[2])(scores(x)))
    f22 = integ(lambda x: (lambda s: s[1] * s[1] * s[2])(scores(x)))
    def pstar(x):
        A, B = comps(x, t1, t2)
        return A + B
    g1 = -integ(lambda x: scores(x)[0] * pstar(x))
    g2 = -integ(lambda x: scores(x)[1] * pstar(x))
    det = f11 * f22 - f12 * f12
    n1 = (f22 * g1 - f12 * g2) / det
    n2 = (f11 * g2 - f12 * g1) / det
    cosang = (g1 * n1 + g2 * n2) / (mp.sqrt(g1**2 + g2**2) * mp.sqrt(n1**2 + n2**2))
    ang = mp.degrees(mp.acos(cosang))
    tr = f11 + f22
    lmin = (tr - mp.sqrt((f11 - f22) ** 2 + 4 * f12**2)) / 2
    lmax = tr - lmin
    return {
        "sigma": sigma, "w": w, "target": list(target), "theta": [mu1, mu2],
        # exact decimal strings (JSON number parsers need not round-trip the last bit)
        "theta_str": [repr(mu1), repr(mu2)],
        "gradient": [float(g1), float(g2)],
        "natural_gradient": [float(n1), float(n2)],
        "angle_deg": float(ang),
        "eigenvalues": [float(lmin), float(lmax)],
    }

cases = []
# the point, seed model (sigma 1, w 1/2, target (-1.5, 2)): (12.4999995, 12.5000005)
cases.append(case(1.0, 0.5, (-1.5, 2.0), 12.5, 1e-6))
for d in [1e-1, -1e-3, 1e-5, 1e-8, -1e-10, 1e-12]:
    cases.append(case(1.0, 0.3, (-1.5, 2.0), 0.4, d))
for d in [1e-4, 1e-9, -1e-12]:
    cases.append(case(2.5, 0.8, (-4.0, 6.0), 1.0, d * 2.5))
# issue 11's kappa = inf cases: starts 1e-8 and 1e-15 from the line, sigma >= 4.3e9, w = 1 - 1e-10
cases.append(case_theta(1.0, 0.5, (-1.5, 2.0), 0.1, 0.1 + 1e-8))
cases.append(case(1.0, 0.5, (-1.5, 2.0), 0.1, 1e-15))
cases.append(case_theta(4.3e9, 0.5, (-1.5, 2.0), 0.1, 0.15))
cases.append(case_theta(1e12, 0.3, (-1.5, 2.0), -3.0, 2.5))
cases.append(case_theta(1.0, 0.9999999999, (-1.5, 2.0), 0.1, 0.15))
cases.append(case_theta(1.0, 0.9999999999, (-1.5, 2.0), -3.0, 2.5))
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mixture_near_line_reference.json")
with open(out, "w") as f:
    json.dump({"generator": "tests/data/mixture_near_line_reference.py (mpmath, 60 digits)", "cases": cases}, f, indent=1)
print(f"wrote {len(cases)} cases to {out}")
