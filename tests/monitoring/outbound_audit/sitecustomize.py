"""Imported at start-up by every Python process that has this folder on its PYTHONPATH: logs each socket connection
and DNS lookup the process makes to the file ADX_OUTBOUND_LOG names, one line each ("connect <address>" or
"resolve <host>"). A test reads it to prove a command talks to nothing but 127.0.0.1."""

import os
import sys

_LOG = os.environ.get("ADX_OUTBOUND_LOG")


def _log_network(event: str, args: tuple) -> None:
    if event == "socket.connect":
        line = f"connect {args[1]!r}"
    elif event == "socket.getaddrinfo":
        line = f"resolve {args[0]!r}"
    else:
        return
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(line + "\n")


if _LOG:
    sys.addaudithook(_log_network)
