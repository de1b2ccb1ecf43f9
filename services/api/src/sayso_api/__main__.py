import sys

from sayso_service.imports import leave_out

# Only what no service uses (see sayso_service.imports). aiodns stays: aiohttp's default
# resolver is built on it when it is installed.
leave_out()

from sayso_service.serve import serve  # noqa: E402

from sayso_api.app import create_app  # noqa: E402
from sayso_api.settings import ApiSettings  # noqa: E402

USAGE = "usage: sayso-api [migrate | rotate-secrets]"


def main() -> None:
    args = sys.argv[1:]
    if args == ["migrate"]:
        from sayso_api.migrations import main as migrate

        sys.exit(migrate())
    if args == ["rotate-secrets"]:
        from sayso_api.rotation import main as rotate

        sys.exit(rotate())
    if args:
        sys.exit(USAGE)
    settings = ApiSettings()
    serve(create_app(settings), settings, "api")


if __name__ == "__main__":
    main()
