"""``segql ui``: bind 127.0.0.1, make this start's tokens, print the address, serve."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from pathlib import Path

from segql.errors import SegqlError
from segql.ui.security import Secrets

HOST = "127.0.0.1"  # never another interface: the app shows people's data


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (``port`` 0: any free port), or a clear error."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((HOST, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise SegqlError(
                f"port {port} on {HOST} is in use (another segql ui, or another program)",
                help="give another with --port N, or --port 0 for any free port",
            ) from None
        raise SegqlError(f"cannot listen on {HOST}:{port}: {error.strerror}") from None
    listener.listen(64)
    return listener


def serve(root: Path, port: int, read_only: bool, echo: Callable[[str], None]) -> None:
    """Serve the project at ``root`` until interrupted."""
    import uvicorn

    from segql.ui.app import create_app

    listener = bind(port)
    keys = Secrets(listener.getsockname()[1])
    app = create_app(root, keys, read_only)
    echo(f"segql ui for {root.name}{' (read-only)' if read_only else ''}: open")
    echo(f"  {keys.address()}")
    echo("the token is new at each start; Ctrl-C stops the app")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[listener])
