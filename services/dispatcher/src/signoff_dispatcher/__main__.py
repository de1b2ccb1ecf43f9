from signoff_common.runtime import serve
from signoff_dispatcher.app import create_app
from signoff_dispatcher.settings import DispatcherSettings


def main() -> None:
    settings = DispatcherSettings()
    serve(create_app(settings), settings, "dispatcher")


if __name__ == "__main__":
    main()
