from sayso_service.imports import leave_out

# Form parsing: this service answers its probes only.
leave_out("python_multipart", "multipart")

from sayso_service.serve import serve  # noqa: E402

from sayso_expirer.app import create_app  # noqa: E402
from sayso_expirer.settings import ExpirerSettings  # noqa: E402


def main() -> None:
    settings = ExpirerSettings()
    serve(create_app(settings), settings, "expirer")


if __name__ == "__main__":
    main()
