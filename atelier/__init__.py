"""atelier: text-to-image generation you can train, run, edit with, serve and measure on a CPU.

Layout (see STYLE.md): ``shapes/`` the embedded procedural world, its captioner and judge;
``data/`` datasets yielding (image in [-1, 1], caption); ``text/`` tokenizers and text encoders;
``cli/`` the single ``atelier`` command.
"""

__version__ = "0.1.0"
