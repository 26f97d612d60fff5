"""The diffusion math, kept apart from every network (guided-diffusion, k-diffusion style).

- ``schedules.py``: betas (linear, scaled-linear, cosine), zero-terminal-SNR, timestep spacing,
  Karras sigmas; pure float64 functions.
- ``parameterization.py``: q(x_t | x_0) and the eps / x_0 / v prediction types.
- ``plan.py``: :class:`SamplingPlan`, the noise levels and timesteps a sampler visits.
- ``denoiser.py``: :class:`VPDenoiser`, a VP network as the VE denoiser D(x, sigma, t).
- ``samplers/``: DDPM, DDIM, Euler, Euler ancestral, Heun, DPM-Solver++(2M) (+SDE), UniPC, LCM,
  one signature (``samplers/base.py``); :func:`get_sampler` picks one by name.
- ``consistency.py``: LCM's consistency function f = c_skip x_t + c_out x0_pred.
- ``guidance.py``: classifier-free guidance (batched, rescale, interval), classifier guidance,
  dynamic and static thresholding, all as wrappers.
- ``losses.py``: the training loss (uniform or min-SNR-gamma), offset noise, loss per bucket.
- ``analytic.py``: a Gaussian mixture with its exact denoiser, the samplers' test bed.
"""
