from sayso_service.serve import serve

from sayso_realtime.app import create_app
from sayso_realtime.settings import RealtimeSettings


def main() -> None:
    settings = RealtimeSettings()
    serve(create_app(settings), settings, "realtime")


if __name__ == "__main__":
    main()
