from signoff_service.serve import serve

from signoff_expirer.app import create_app
from signoff_expirer.settings import ExpirerSettings


def main() -> None:
    settings = ExpirerSettings()
    serve(create_app(settings), settings, "expirer")


if __name__ == "__main__":
    main()
