from sayso_service.imports import leave_out

# The socket.io client side (requests, aiohttp), cryptography (PyJWT's RSA/EC algorithms; tokens
# are HS256) and form parsing: this service only serves JSON and checks tokens.
leave_out("requests", "aiohttp", "cryptography", "python_multipart", "multipart")

from sayso_service.serve import serve  # noqa: E402

from sayso_realtime.app import create_app  # noqa: E402
from sayso_realtime.settings import RealtimeSettings  # noqa: E402


def main() -> None:
    settings = RealtimeSettings()
    serve(create_app(settings), settings, "realtime")


if __name__ == "__main__":
    main()
