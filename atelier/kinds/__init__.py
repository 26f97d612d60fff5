"""Model kinds: every kind of model folder (diffusion, CLIP, feature network, upscaler,
autoencoder) has one module that saves, loads and describes it; ``registry.py`` maps the
``kind`` a folder's config.json names to that module, and loads any folder through it."""
