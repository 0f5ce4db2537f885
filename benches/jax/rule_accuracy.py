"""Accuracy of the two rules of the throughput comparison, on equal footing.

The JAX script's fixed rule (56 panels of σ/2 over [−14σ, 14σ], 12 Gauss–Legendre nodes each)
and fisher-flow's fused composite kernel (values from `cargo run --release --example
kernel_values`), both against one reference: 2000 panels over [−30σ, 30σ] with 24 nodes each
(48 000 nodes, numpy's pairwise-summed dot products). Demo mixture σ = 1, w = ½, target (−1.5, 2).

    cargo run --release --example kernel_values > /tmp/ours.txt
    python3 benches/jax/rule_accuracy.py /tmp/ours.txt
"""

import sys

import numpy as np

W, TARGET = 0.5, (-1.5, 2.0)


def rule(panels, lo, hi, n):
    z, om = np.polynomial.legendre.leggauss(n)
    e = np.linspace(lo, hi, panels + 1)
    a, b = e[:-1, None], e[1:, None]
    return (0.5 * (a + b) + 0.5 * (b - a) * z).ravel(), (0.5 * (b - a) * om).ravel()


def fisher_grad(x, wt, mu):
    def lps(mu):
        d1, d2 = x - mu[0], x - mu[1]
        a = np.log(W) - 0.5 * d1 * d1
        b = np.log(1 - W) - 0.5 * d2 * d2
        lse = np.logaddexp(a, b)
        r1, r2 = np.exp(a - lse), np.exp(b - lse)
        return lse - np.log(np.sqrt(2 * np.pi)), np.stack([r1 * d1, r2 * d2])

    lp, s = lps(mu)
    p = np.exp(lp) * wt
    f = np.array([[p @ (s[0] * s[0]), p @ (s[0] * s[1])], [p @ (s[0] * s[1]), p @ (s[1] * s[1])]])
    pt = np.exp(lps(np.array(TARGET))[0]) * wt
    return f, -(s @ pt)


def main():
    xj, wj = rule(56, -14.0, 14.0, 12)
    xr, wr = rule(2000, -30.0, 30.0, 24)
    worst = {"jax": [0.0, 0.0], "fisher-flow": [0.0, 0.0]}
    for line in open(sys.argv[1]):
        v = [float(t) for t in line.split()]
        th = np.array(v[:2])
        fr, gr = fisher_grad(xr, wr, th)
        fj, gj = fisher_grad(xj, wj, th)
        ours = (np.array([[v[2], v[3]], [v[3], v[4]]]), np.array(v[5:7]))
        for name, (f, g) in (("jax", (fj, gj)), ("fisher-flow", ours)):
            worst[name][0] = max(worst[name][0], np.abs(f - fr).max() / np.abs(fr).max())
            worst[name][1] = max(worst[name][1], np.abs(g - gr).max())
    for name, (ef, eg) in worst.items():
        print(f"{name}: Fisher {ef:.1e} of the largest entry, gradient {eg:.1e} (absolute)")


if __name__ == "__main__":
    main()
