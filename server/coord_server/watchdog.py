"""A bound on shutdown: once SIGTERM or SIGINT has arrived, the process ends within the grace period
plus a margin, whatever is stuck.

Shutdown waits for the calls in flight (up to ``COORD_SHUTDOWN_GRACE``), then closes the Redis
connections (each close bounded) and stops an embedded Redis. Should any of it hang (a peer that
never answers, a library waiting on a lock), a supervisor would SIGKILL the process at its own limit
and leave no word of why, and a plain ``kill`` would wait forever. The watchdog is a thread, so that
it fires even when the event loop itself is stuck: it logs an error, writes every thread's stack to
stderr (where the log goes) and ends the process with status 1.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

# Beyond the grace period: closing Redis connections and stopping an embedded Redis (each bounded by
# COORD_REDIS_TIMEOUT or less) fit well within it.
MARGIN = 5.0


class ShutdownWatchdog:
    """Armed when shutdown starts (:meth:`start`), disarmed when it has finished (:meth:`cancel`)."""

    def __init__(self, grace: float, margin: float = MARGIN) -> None:
        self.limit = grace + margin
        self._timer = threading.Timer(self.limit, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        log.error("shutdown did not finish within %gs: exiting now; every thread's stack follows", self.limit)
        for handler in logging.getLogger().handlers:
            handler.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(1)
