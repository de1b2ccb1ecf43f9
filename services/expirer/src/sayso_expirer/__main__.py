from sayso_service.serve import serve

from sayso_expirer.app import create_app
from sayso_expirer.settings import ExpirerSettings


def main() -> None:
    settings = ExpirerSettings()
    serve(create_app(settings), settings, "expirer")


if __name__ == "__main__":
    main()
