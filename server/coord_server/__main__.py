"""``python -m coord_server`` / ``coord-server``: run Coord until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from .app import serve
from .config import ConfigError, load_settings
from .embedded import EmbeddedRedisError


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except ConfigError as exc:
        print(f"coord-server: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency; stay usable without it
        runner = asyncio.run
    try:
        runner(serve(settings))
    except EmbeddedRedisError as exc:
        logging.getLogger("coord_server").error("%s", exc)
        return 1
    except OSError as exc:
        logging.getLogger("coord_server").error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
