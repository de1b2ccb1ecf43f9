from sayso_service.serve import serve

from sayso_notifier.app import create_app
from sayso_notifier.settings import NotifierSettings


def main() -> None:
    settings = NotifierSettings()
    serve(create_app(settings), settings, "notifier")


if __name__ == "__main__":
    main()
