"""The ``gateway`` command's entry point: says what to install when the server side is missing.

``pip install events-gateway`` alone is the web-app side (the proxy); the
gateway itself needs the ``server`` extra. Without it, importing the command
would end in a bare ModuleNotFoundError.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: What the gateway needs beyond the web-app side, by import name.
SERVER_MODULES = ("crossbar", "autobahn", "twisted", "pydantic", "lark", "jwt", "psycopg", "pika")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from components.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in SERVER_MODULES:
            raise
        print(f"gateway: the gateway's own dependencies are not installed ({exc.name} is missing): "
              "pip install 'events-gateway[server]'. (The base install is only the web-app side: "
              "webapp_bridge.proxy.)", file=sys.stderr)
        return 2
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
