"""``web-bff [--host H] [--port P] [--workers N]``: serve the web BFF."""

from __future__ import annotations

from collections.abc import Sequence

from bff_core.litestar import serve

from .app import create_app


def main(argv: Sequence[str] | None = None) -> None:
    serve(
        prog="web-bff",
        app_factory="web_bff.app:create_app",
        default_port=8001,
        argv=argv,
        check=create_app,
    )


if __name__ == "__main__":
    main()
