"""One worker of the data plane: `python -m data_plane.worker_process --index I --ready-fd F`.

Started only by the supervisor (`data_plane.workers`), which has already checked the
settings and the port, and gives each worker its index and the write end of a pipe.
A worker is a whole data plane (`create_app`): its own Redis connections, route sync,
registry, runtimes and recorder, under its own plane id (`Settings.for_worker`).

It binds host:port with SO_REUSEPORT beside its siblings, but listens only once its
app has started (routes installed), so the kernel never hands a connection to a
worker that cannot answer it yet. Then it writes one byte to the pipe ("ready") and
closes it. SIGTERM drains it as uvicorn does; it also gets SIGTERM if the supervisor
dies (Linux's parent-death signal, set by the supervisor), so none outlives it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from data_plane.app import create_app
from data_plane.settings import Settings
from shared.serving import STARTUP_FAILURE, bind_socket, configure_logging, serve_socket
from shared.settings import SettingError

log = logging.getLogger("ffaas.worker")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_plane.worker_process")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args(argv)
    os.set_inheritable(args.ready_fd, False)  # engine processes this worker starts must not hold it
    try:
        settings = Settings.from_environ(os.environ).for_worker(args.index)
    except (SettingError, ValueError) as exc:
        print(f"data plane worker {args.index}: {exc}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    configure_logging(settings.log_level)
    try:
        sock = bind_socket(settings.host, settings.port, reuse_port=True)
    except OSError as exc:
        log.error(
            "worker %d cannot bind %s:%d (FFAAS_DATA_PLANE_HOST, FFAAS_DATA_PLANE_PORT): %s",
            settings.worker,
            settings.host,
            settings.port,
            exc.strerror or exc,
        )
        sys.exit(STARTUP_FAILURE)

    def ready() -> None:
        log.info(
            "worker %d of %d (pid %d, plane id %s) serves on http://%s:%d",
            settings.worker,
            settings.workers,
            os.getpid(),
            settings.plane_id,
            settings.host,
            settings.port,
        )
        with contextlib.suppress(OSError):  # the supervisor is gone: its death signal stops us
            os.write(args.ready_fd, b"r")
        os.close(args.ready_fd)

    serve_socket(create_app(settings), sock, log_level=settings.log_level, on_ready=ready)


if __name__ == "__main__":
    main()
