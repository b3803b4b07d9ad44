"""One recommended service config for every language: the Python client and the Node suite load the
same ``client/coord_client/service_config.json``.

The Node side checks its channel option byte for byte and shows grpc-js retrying from it
(``suite/platform.test.js``, ``outage/retry.test.js``). Here: the Python client's channel is built
from that very file (timeouts in the channel, retries in the client, as ``coord_client._base`` explains).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from coord_client._base import RETRIED_METHODS, SERVICE_CONFIG, channel_options

from ._node import NODE_DIR

# The path lib/coord.js reads (SERVICE_CONFIG_PATH there).
NODE_SERVICE_CONFIG = NODE_DIR.parents[1] / "client" / "coord_client" / "service_config.json"


def _file() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(NODE_SERVICE_CONFIG.read_text("utf-8"))
    return config


def test_python_and_node_read_one_file() -> None:
    python_file = Path(str(resources.files("coord_client").joinpath("service_config.json")))
    assert python_file.resolve() == NODE_SERVICE_CONFIG.resolve()
    assert _file() == SERVICE_CONFIG


def test_python_channel_carries_the_file_and_retries_what_it_retries() -> None:
    shipped = _file()
    options = dict(channel_options())
    in_channel = json.loads(options["grpc.service_config"])
    # The channel gets every methodConfig with its name and timeout; the retry policies move into
    # the client's own retry loop (so attempts never multiply), which retries exactly those methods.
    assert in_channel["methodConfig"] == [
        {k: v for k, v in mc.items() if k != "retryPolicy"} for mc in shipped["methodConfig"]
    ]
    retried_in_file = {
        f"/{name['service']}/{name['method']}"
        for mc in shipped["methodConfig"]
        if "retryPolicy" in mc
        for name in mc["name"]
    }
    assert retried_in_file == RETRIED_METHODS
    assert "/coord.cache.v1.CacheService/Increment" not in RETRIED_METHODS
    assert not any(m.startswith("/coord.lock.v1.LockService/Acquire") for m in RETRIED_METHODS)
