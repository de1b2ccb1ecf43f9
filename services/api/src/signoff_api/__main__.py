import sys

from signoff_service.serve import serve

from signoff_api.app import create_app
from signoff_api.settings import ApiSettings

USAGE = "usage: signoff-api [rotate-secrets]"


def main() -> None:
    args = sys.argv[1:]
    if args == ["rotate-secrets"]:
        from signoff_api.rotation import main as rotate

        sys.exit(rotate())
    if args:
        sys.exit(USAGE)
    settings = ApiSettings()
    serve(create_app(settings), settings, "api")


if __name__ == "__main__":
    main()
