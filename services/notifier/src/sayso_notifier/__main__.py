from sayso_service.imports import leave_out

# aiodns (every request resolves through the SSRF guard's own resolver) and form parsing.
leave_out("aiodns", "python_multipart", "multipart")

from sayso_service.serve import serve  # noqa: E402

from sayso_notifier.app import create_app  # noqa: E402
from sayso_notifier.settings import NotifierSettings  # noqa: E402


def main() -> None:
    settings = NotifierSettings()
    serve(create_app(settings), settings, "notifier")


if __name__ == "__main__":
    main()
