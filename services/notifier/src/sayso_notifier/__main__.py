from sayso_service.imports import leave_out

# Form parsing. Not aiodns: SAYSO_DISPATCHER_DNS_SERVERS builds aiohttp's AsyncResolver on it
# (left out, a dispatcher given DNS servers exited at start), and it is aiohttp's default resolver.
leave_out("python_multipart", "multipart")

from sayso_service.serve import serve  # noqa: E402

from sayso_notifier.app import create_app  # noqa: E402
from sayso_notifier.settings import NotifierSettings  # noqa: E402


def main() -> None:
    settings = NotifierSettings()
    serve(create_app(settings), settings, "notifier")


if __name__ == "__main__":
    main()
