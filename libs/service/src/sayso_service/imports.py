"""Optional imports a service process never uses, left out before it loads its app (issue #36).

Some libraries import an optional package whenever it is installed, whether or not the process
uses what it enables, and each such package costs megabytes of resident memory per process:

- python-socketio loads its client side with the package, and with it requests and aiohttp; the
  realtime service only serves.
- PyJWT loads most of cryptography for the RSA and EC algorithms; user tokens are HS256 (plain
  HMAC), so a service that checks tokens and seals no secrets does not need it.
- pymongo tries its pyOpenSSL TLS support first: it loads ``cryptography.x509``, then finds
  pyOpenSSL missing and falls back to the standard ``ssl`` module. Left out only while pyOpenSSL
  is not installed, so the outcome is the one pymongo reaches anyway.
- uvicorn loads watchfiles for its reloader (``--reload``), which a service never runs; without
  it uvicorn would pick its polling reloader.
- ``import uvicorn`` loads its command line, and with it click; FastStream imports uvicorn to
  see whether it is there. The package is put in place first without its command line
  (:mod:`sayso_service.uvicorn_internals`), so whoever imports it later gets that one.

A name set to None in ``sys.modules`` makes ``import name`` raise ImportError, which these
libraries take as "not installed". Called by a service's entry point (``__main__``) before it
imports its app, never by a library: code of that process that does need a module left out fails
at import, loudly. A module already loaded stays loaded.
"""

from __future__ import annotations

import importlib.util
import sys

from sayso_service import uvicorn_internals

PYMONGO_PYOPENSSL = "pymongo.pyopenssl_context"
ALWAYS = ("watchfiles",)


def leave_out(*names: str) -> None:
    """Make ``names`` unimportable in this process, along with what no service uses (uvicorn's
    reloader, pymongo's pyOpenSSL attempt while pyOpenSSL is not installed)."""
    pyopenssl = () if importlib.util.find_spec("OpenSSL") is not None else (PYMONGO_PYOPENSSL,)
    for name in (*names, *ALWAYS, *pyopenssl):
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
    uvicorn_internals.package()
