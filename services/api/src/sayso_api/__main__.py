import sys

from sayso_service.imports import leave_out

# Only what no service uses (see sayso_service.imports). aiohttp stays importable but is not
# loaded: the API vets endpoint URLs through the system resolver (sayso_common.ssrf.vet_host).
leave_out()

from sayso_service.serve import serve  # noqa: E402

# The schema checker is loaded here, at start, not by the first review whose arguments have a
# schema: sayso_common.reviews loads it only where a schema is checked, for the services that
# never check one.
import sayso_common.arg_schema  # noqa: E402, F401
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
