"""How the command line reports a failure: one line, without the data the command worked on
(``fhir_bridge.cli.main`` is the one place that prints it, exit 2)."""

from __future__ import annotations

from .errors import BridgeError


class CommandError(Exception):
    """The command cannot do what was asked; the message is the one line the user sees."""


def error_line(exc: BaseException) -> str:
    """One line saying what went wrong, without the data the command worked on: the
    project's own messages (written for users), the kind of a database or file problem, and
    for anything else only the exception's type."""
    import sqlalchemy.exc as sa_exc

    name = type(exc).__name__
    if isinstance(exc, CommandError):
        text = str(exc)
    elif isinstance(exc, BridgeError):
        text = exc.message
        if exc.issues:
            text += ": " + "; ".join(f"{i.path}: {i.message}" for i in exc.issues)
    elif isinstance(exc, (sa_exc.ArgumentError, sa_exc.NoSuchModuleError)):
        text = (f"database_url is not a database URL this service can use ({name}); e.g. "
                "sqlite:///bridge.db or postgresql+psycopg://user:password@host:5432/name")
    elif isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        text = (f"cannot use the database that database_url names ({name}): is the server "
                "running, are host, port, name, user and password right?")
    elif isinstance(exc, sa_exc.SQLAlchemyError):
        text = f"the database refused the operation ({name})"
    elif isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        text = f"cannot access{where}: {exc.strerror or name}"
    else:
        text = f"unexpected error ({name}); nothing more is shown, it could hold data"
    return "error: " + " ".join(text.split())
