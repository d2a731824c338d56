"""How a command fails: one line on stderr and an exit status, never a traceback.

Raise `Failure` anywhere below a command; `main.run` prints `error: <message>` and exits with
its status: 1 when the request was refused or could not be made, 2 (`UsageFailure`) when the
command line itself is wrong (a file that cannot be read, a malformed header or variable).
"""

from __future__ import annotations

REFUSED = 1
BAD_USAGE = 2


class Failure(Exception):
    exit_code = REFUSED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, whatever the message held


class UsageFailure(Failure):
    exit_code = BAD_USAGE
