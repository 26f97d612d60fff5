"""Sampler benchmark on the analytic Gaussian-mixture test bed (one command, prints tables).

    .venv/bin/python bench/samplers.py [--quick]

1. Distance (sliced Wasserstein-2) of each sampler's samples to fresh true samples, against the
   number of network evaluations (NFE, counted, not assumed), in 2-D and 64-D, with and without
   classifier-free guidance (scale 2 on the exact class-conditional and unconditional denoisers).
2. The NFE each sampler needs to come within 5% of DDPM at 1000 steps.
3. Per-step time spent outside the network: ours vs the matching diffusers scheduler's ``step``,
   measured side by side in this run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atelier.diffusion.analytic import GaussianMixture, ring_mixture  # noqa: E402
from atelier.diffusion.plan import make_plan  # noqa: E402
from atelier.diffusion.samplers import SAMPLERS, get_sampler  # noqa: E402
from atelier.diffusion.schedules import alphas_cumprod, make_betas  # noqa: E402
from atelier.eval.distances import sliced_wasserstein  # noqa: E402

STEPS = [3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000]
TABLE_STEPS = [5, 10, 20, 50, 100]
GUIDANCE = 2.0
# Each sampler on the timestep spacing its diffusers counterpart uses by default.
SPACING = {"ddpm": "leading", "ddim": "leading"}
DIFFUSERS = {
    "ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler", "heun": "HeunDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler", "dpmpp_2m_sde": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}  # fmt: skip


class Counted:
    """A denoiser that counts its calls (NFE)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, sigma, t):
        self.calls += 1
        return self.fn(x, sigma, t)


def denoiser_for(mixture: GaussianMixture, guided: bool):
    if not guided:
        return lambda x, sigma, t: mixture.denoise(x, sigma)
    cond = mixture.subset(0)

    def cfg(x, sigma, t):  # one "batched call" of two exact denoisers, mixed in x0 space
        u, c = mixture.denoise(x, sigma), cond.denoise(x, sigma)
        return u + GUIDANCE * (c - u)

    return cfg


def run(name: str, mixture: GaussianMixture, abar, steps: int, n: int, guided: bool, seed: int):
    plan = make_plan(abar, steps, spacing=SPACING.get(name, "linspace"))
    torch.manual_seed(seed)
    x = torch.randn(n, mixture.dim, dtype=torch.float64) * plan.init_noise_sigma
    den = Counted(denoiser_for(mixture, guided))
    out = get_sampler(name)(den, x, plan)
    return out, den.calls


def quality(abar, names, dim: int, n: int, guided: bool, quick: bool) -> None:
    mixture = ring_mixture(dim)
    target = mixture.subset(0) if guided else mixture
    true = target.sample(n, torch.Generator().manual_seed(123))
    floor = sliced_wasserstein(true, target.sample(n, torch.Generator().manual_seed(456)))
    ref_out, _ = run("ddpm", mixture, abar, 1000, n, guided, seed=1)
    ref = sliced_wasserstein(ref_out, true)
    label = f"{dim}-D, " + (f"CFG scale {GUIDANCE:.0f}" if guided else "no guidance")
    print(
        f"\n## {label}: sliced W2 to {n} true samples (floor true-vs-true {floor:.4f}; "
        f"DDPM 1000 steps {ref:.4f})"
    )
    print(
        f"{'sampler':<16}"
        + "".join(f"{f'{s} st':>14}" for s in TABLE_STEPS)
        + f"{'NFE to DDPM-1000 +5%':>24}"
    )
    for name in names:
        cells, need = [], None
        for steps in STEPS if not quick else TABLE_STEPS:
            out, nfe = run(name, mixture, abar, steps, n, guided, seed=1)
            d = sliced_wasserstein(out, true)
            if steps in TABLE_STEPS:
                cells.append(f"{d:.4f} ({nfe:>3})")
            if need is None and d <= 1.05 * ref:
                need = nfe
                if quick:
                    break
        cells += ["-"] * (len(TABLE_STEPS) - len(cells))
        print(
            f"{name:<16}"
            + "".join(f"{c:>14}" for c in cells)
            + f"{need if need is not None else '>' + str(STEPS[-1]):>24}"
        )
    print("cells: distance (NFE)")


def overhead(abar, names, steps: int = 50, repeats: int = 5) -> None:
    import diffusers

    shape = (1, 4, 16, 16)
    print(
        f"\n## per-step time outside the network, {shape} latent, {steps} steps (best of {repeats})"
    )
    print(f"{'sampler':<16}{'ours us/step':>14}{'diffusers us/step':>20}{'ours/diffusers':>16}")
    model_out = torch.zeros(shape)
    for name in names:
        cls = getattr(diffusers, DIFFUSERS[name])
        extra = {"algorithm_type": "sde-dpmsolver++"} if name == "dpmpp_2m_sde" else {}
        sched = cls(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, **extra)
        best_d = float("inf")
        for _ in range(repeats):
            sched.set_timesteps(steps)
            x = torch.randn(shape)
            t0 = time.perf_counter()
            for t in sched.timesteps:
                x = sched.step(model_out, t, sched.scale_model_input(x, t)).prev_sample
            best_d = min(best_d, time.perf_counter() - t0)
        n_d = len(sched.timesteps)
        plan = make_plan(abar, steps, spacing=SPACING.get(name, "linspace"))
        best_o = float("inf")
        for _ in range(repeats):
            x = torch.randn(shape) * plan.init_noise_sigma
            den = Counted(lambda x, sigma, t: x * 0.5)
            t0 = time.perf_counter()
            get_sampler(name)(den, x, plan)
            best_o = min(best_o, time.perf_counter() - t0)
        ours, theirs = best_o / den.calls * 1e6, best_d / n_d * 1e6
        print(f"{name:<16}{ours:>14.1f}{theirs:>20.1f}{ours / theirs:>16.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, smaller sample sets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    abar = alphas_cumprod(make_betas("scaled_linear", 1000))
    names = [n for n in DIFFUSERS if n in SAMPLERS]
    n2, n64 = (1000, 500) if args.quick else (4000, 2000)
    for dim, n in ((2, n2), (64, n64)):
        for guided in (False, True):
            quality(abar, names, dim, n, guided, args.quick)
    overhead(abar, names)


if __name__ == "__main__":
    main()
