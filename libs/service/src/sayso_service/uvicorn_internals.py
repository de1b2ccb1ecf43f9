"""uvicorn's server without its command line (issue #36: memory at rest). ``tests/
test_library_contracts.py`` fails if the pinned uvicorn stops behaving as relied on here.

``import uvicorn`` runs the package's ``__init__``, which imports ``uvicorn.main`` (the command
line) and with it click: about 1.5 MB resident in each service process, measured, that no
service ever uses. :func:`run` does what ``uvicorn.run`` does for one process serving an app
object (no reload, no workers), with ``uvicorn.config.Config`` and ``uvicorn.server.Server``
loaded under a ``uvicorn`` package whose ``__init__`` is not run. It relies on:

- ``uvicorn/__init__.py`` only re-exporting ``Config``, ``Server``, ``main``, ``run`` and
  ``__version__``, and nothing the server imports needing more of it than ``Config``
  (``uvicorn.lifespan.on`` and ``off`` import ``from uvicorn import Config``);
- ``uvicorn.run`` being, for that case: ``Config(app, **options)``, ``config.load_app()``,
  ``Server(config).run()`` (a Ctrl-C ends it quietly), and exiting with ``STARTUP_FAILURE`` when
  the server never started (a lifespan start-up that failed).

A process that already imported uvicorn the usual way keeps it; nothing else changes there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


def package() -> ModuleType:
    """The ``uvicorn`` package with ``Config`` and ``Server``, without its command line."""
    loaded = sys.modules.get("uvicorn")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("uvicorn is not installed")
    # Created from its spec (so its submodules are found) but its __init__ is not executed.
    module = importlib.util.module_from_spec(spec)
    sys.modules["uvicorn"] = module
    try:
        from uvicorn.config import Config
        from uvicorn.server import Server
    except BaseException:
        del sys.modules["uvicorn"]
        raise
    module.Config = Config  # type: ignore[attr-defined]
    module.Server = Server  # type: ignore[attr-defined]
    return module


def run(app: Any, **options: Any) -> None:
    """Serve ``app`` (an ASGI app object) until a signal stops the server, as ``uvicorn.run``
    would in one process; exits with uvicorn's start-up failure code if it never started."""
    uvicorn = package()  # first: importing a submodule would run the package's __init__
    from uvicorn.config import STARTUP_FAILURE

    config = uvicorn.Config(app, **options)
    if config.reload or config.workers > 1:
        raise ValueError("reload and workers need uvicorn's command line (uvicorn.run)")
    config.load_app()
    server = uvicorn.Server(config=config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
