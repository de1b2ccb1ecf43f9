from signoff_api.app import create_app
from signoff_api.settings import ApiSettings
from signoff_common.runtime import serve


def main() -> None:
    settings = ApiSettings()
    serve(create_app(settings), settings, "api")


if __name__ == "__main__":
    main()
