"""The baseline: a bare Starlette app served exactly as the planes are served.

It answers ``Hello, world!`` as ``text/plain`` on any path and any method,
the same bytes the ``hello.wasm`` endpoint answers, so that the ratio of the
two throughputs is the cost of FFAAS itself (routing, a wasm instance per
request, the conversation record). Run as ``python -m bench.bare_app --port N``.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!\n")


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", hello, methods=METHODS),
            Route("/{path:path}", hello, methods=METHODS),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # The same server options as each plane process (shared/serving.py), in one process.
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
