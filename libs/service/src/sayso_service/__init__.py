"""How a Sayso service runs over HTTP (uvicorn, probes, the error handlers), kept out of the
contracts library (``sayso_common``) so that one stays free of web frameworks."""
