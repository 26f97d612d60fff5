"""The text-conditional GAN's math, kept apart from its networks (as ``diffusion/`` is).

- ``losses.py``: the hinge losses of generator and discriminator, DF-GAN's matching-aware
  gradient penalty (MA-GP) and R1, each a plain function of logits and inputs.
- ``augment.py``: DiffAugment's differentiable translation and colour jitter, applied alike to
  real and generated images before the discriminator sees them.
- ``noise.py``: the noise z of each image from its own seeded generator, and truncation.
- ``options.py``: :class:`GANOptions`, what a GAN folder stores as its sampling defaults.

The networks are in ``models/gan_generator.py`` and ``models/gan_discriminator.py``; the
training step that combines them is ``training/gan_task.py``.
"""
