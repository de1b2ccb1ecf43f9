import os

from pydantic import TypeAdapter, ValidationError
from sayso_service.imports import leave_out

from sayso_common.legacy import OLD_PREFIX


def _otel_export_asked() -> bool:
    """Whether SAYSO_OTEL (or its name before the rename, which the settings adopt) turns export
    on: the OTLP exporter sends with requests, so it must stay importable then."""
    raw = os.environ.get("SAYSO_OTEL", os.environ.get(f"{OLD_PREFIX}OTEL"))
    try:
        return raw is not None and TypeAdapter(bool).validate_python(raw.strip())
    except ValidationError:
        return False  # the settings refuse it at start, naming it


# The socket.io client side (requests, aiohttp), cryptography (PyJWT's RSA/EC algorithms; tokens
# are HS256) and form parsing: this service only serves JSON and checks tokens.
leave_out(
    "aiohttp",
    "cryptography",
    "python_multipart",
    "multipart",
    *(() if _otel_export_asked() else ("requests",)),
)

from sayso_service.serve import serve  # noqa: E402

from sayso_realtime.app import create_app  # noqa: E402
from sayso_realtime.settings import RealtimeSettings  # noqa: E402


def main() -> None:
    settings = RealtimeSettings()
    serve(create_app(settings), settings, "realtime")


if __name__ == "__main__":
    main()
