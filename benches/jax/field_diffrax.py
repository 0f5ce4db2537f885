"""The issue's particle field in JAX + diffrax, for the throughput comparison in the README.

Same workload as `benches/field.rs` ("composite" rows): demo mixture σ = 1, w = ½, target
(−1.5, 2), the 32×32 grid over [−4, 4]² minus the diagonal (992 starts), the natural-gradient
flow θ' = −I(θ)⁺∇L(θ), Tsit5 with a PID controller at rtol 1e-6, atol 1e-9, t_end 10, float64,
`vmap` over the starts, warm timing (the first call compiles and is not timed).

Expectations use a fixed composite Gauss–Legendre rule of the same accuracy class as the Rust
default: 56 panels of width σ/2 over [−14σ, 14σ], 12 nodes each = 672 nodes (a θ-dependent,
graded panel layout does not fit a jitted, vmapped function; the fixed one is what a JAX user
writes). Panels σ/2 wide keep the poles of the scores (distance πσ²/|Δ| ≥ 0.39σ from the real
axis on this grid) outside Bernstein ellipses with ρ ≳ 3.4, i.e. ≲ 1e-13 per panel.

Run (versions in the README):
    python3 -m venv /tmp/jaxvenv && /tmp/jaxvenv/bin/pip install jax diffrax
    taskset -c 0 /tmp/jaxvenv/bin/python benches/jax/field_diffrax.py   # 1 core
    /tmp/jaxvenv/bin/python benches/jax/field_diffrax.py                # all cores
"""

import argparse
import os
import time

import jax

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

SIGMA, W, TARGET = 1.0, 0.5, (-1.5, 2.0)


def rule(panels=56, lo=-14.0, hi=14.0, n=12):
    z, om = np.polynomial.legendre.leggauss(n)
    edges = np.linspace(lo, hi, panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    x = 0.5 * (a + b) + 0.5 * (b - a) * z[None, :]
    wt = 0.5 * (b - a) * om[None, :]
    return jnp.asarray(x.ravel()), jnp.asarray(wt.ravel())


X, WT = rule()


def logp_scores(x, mu):
    """log p(x|θ) and the scores ∂ log p/∂μₖ = rₖ(x − μₖ)/σ² (log-sum-exp)."""
    d1, d2 = x - mu[0], x - mu[1]
    a = jnp.log(W) - 0.5 * d1 * d1 / SIGMA**2
    b = jnp.log(1.0 - W) - 0.5 * d2 * d2 / SIGMA**2
    lse = jnp.logaddexp(a, b)
    r1, r2 = jnp.exp(a - lse), jnp.exp(b - lse)
    logp = lse - jnp.log(SIGMA * jnp.sqrt(2.0 * jnp.pi))
    return logp, jnp.stack([r1 * d1, r2 * d2]) / SIGMA**2


P_TARGET = jnp.exp(logp_scores(X, jnp.asarray(TARGET))[0])


def solve2_pinv(f11, f12, f22, g, rank_tol=1e-12):
    """(G)⁺g for a symmetric 2×2 G (eigen-decomposition, small eigenvalues dropped)."""
    tr, det = f11 + f22, f11 * f22 - f12 * f12
    disc = jnp.sqrt(jnp.maximum(0.25 * (f11 - f22) ** 2 + f12 * f12, 0.0))
    l1, l2 = 0.5 * tr + disc, 0.5 * tr - disc
    l2 = jnp.where(l1 != 0.0, det / jnp.where(l1 != 0.0, l1, 1.0), l2)
    th = 0.5 * jnp.arctan2(2.0 * f12, f11 - f22)
    v1 = jnp.stack([jnp.cos(th), jnp.sin(th)])
    v2 = jnp.stack([-jnp.sin(th), jnp.cos(th)])
    cut = rank_tol * jnp.abs(l1)
    x = jnp.where(l1 > cut, (v1 @ g) / l1, 0.0) * v1
    x = x + jnp.where(l2 > cut, (v2 @ g) / jnp.where(l2 > cut, l2, 1.0), 0.0) * v2
    return x


def rhs(t, theta, args):
    logp, s = logp_scores(X, theta)
    p = jnp.exp(logp) * WT
    f11, f12, f22 = p @ (s[0] * s[0]), p @ (s[0] * s[1]), p @ (s[1] * s[1])
    g = -(s @ (P_TARGET * WT))  # −E_target[s(x; θ)] on the same nodes
    return -solve2_pinv(f11, f12, f22, g)


def solve_one(theta0, rtol, atol, t_end):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        diffrax.Tsit5(),
        t0=0.0,
        t1=t_end,
        dt0=None,
        y0=theta0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=100_000,
    )
    return sol.ys[-1], sol.stats["num_steps"]


def grid(n=32, a=-4.0, b=4.0):
    c = np.linspace(a, b, n)
    pts = [(c[i], c[j]) for j in range(n) for i in range(n) if c[i] != c[j]]
    return jnp.asarray(np.array(pts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    starts = grid()
    f = jax.jit(jax.vmap(lambda y0: solve_one(y0, 1e-6, 1e-9, 10.0)))
    t0 = time.perf_counter()
    ends, steps = jax.block_until_ready(f(starts))
    compile_s = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        ends, steps = jax.block_until_ready(f(starts))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    ends = np.asarray(ends)
    opt = np.array([TARGET, TARGET[::-1]])
    dist = np.min(np.linalg.norm(ends[:, None, :] - opt[None, :, :], axis=2), axis=1)
    cores = len(os.sched_getaffinity(0))
    print(f"jax {jax.__version__}, diffrax {diffrax.__version__}, cores {cores}, "
          f"{len(starts)} starts, {X.shape[0]} nodes")
    print(f"first call (compile + run) {compile_s:.2f} s; warm runs {['%.3f' % t for t in times]} s; "
          f"min {min(times):.3f} s; process CPU (all threads) min {min(cpu):.3f} s")
    print(f"steps: total {int(np.sum(steps))}, max {int(np.max(steps))}; "
          f"ends within 1e-3 of an optimum: {int(np.sum(dist <= 1e-3))}/{len(starts)}, "
          f"max distance {dist.max():.2e}")


if __name__ == "__main__":
    main()
