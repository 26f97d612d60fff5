"""Ending the ``atelier`` process without paying for torch's teardown.

After a command has written its files and printed its paths, a normal interpreter exit still
spends about 0.35 s (measured here, docs/latency.md): Python tearing down torch's modules and the
C++ libraries' exit handlers. A user waits for it and gains nothing. :func:`exit_now` does what a
normal exit does that matters, then skips the rest:

- the ``atexit`` handlers run (temporary directories, ``weakref.finalize`` callbacks, logging's
  flush), as at a normal exit;
- stdout and stderr are flushed, so every printed path arrives;
- it ends with ``os._exit``, skipping module teardown and the C++ destructors.

It falls back to the normal exit when it could lose work: a live non-daemon thread (a normal
exit waits for it), or torch never imported (teardown is then cheap anyway).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_code(code: object) -> int:
    """``SystemExit.code`` as a process status: None is 0; a message is printed and gives 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def can_skip_teardown() -> bool:
    """Whether ending with ``os._exit`` loses nothing and saves something."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    return "torch" in sys.modules and not any(t.is_alive() and not t.daemon for t in others)


def exit_now(code: object) -> None:
    """End the process with ``code`` (as ``SystemExit`` carries it), skipping teardown if safe."""
    status = exit_code(code)
    if not can_skip_teardown():
        sys.exit(status)
    atexit._run_exitfuncs()  # what a normal exit runs first: cleanups, finalizers, logging
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(status)
