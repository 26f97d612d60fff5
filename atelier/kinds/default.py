"""The model every command, the demo and the server use unless told otherwise, named apart from
the loaders so the command line shows it in ``--help`` without importing torch."""

# The frozen-MiniLM variant, which reads position words (shapes-ldm, the trainable-encoder
# variant, does not; see its model card).
DEFAULT_MODEL = "shapes-ldm-minilm"
