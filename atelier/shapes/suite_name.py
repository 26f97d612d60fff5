"""The name of the world's benchmark suite, apart from its code: the command line shows it in
``--help`` without importing numpy (``bench.py`` reads and writes the suite itself)."""

SUITE_NAME = "shapes-bench"
