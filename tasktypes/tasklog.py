"""Each task's log: what a task body logs with the standard ``logging``
module, at INFO and above, kept with the task and read with ``m_log``.

    with capturing(lambda line: store.append_log(task_id, [line])):
        run the body                     # its logger.info(...) lines are kept

Bounds, the same in both stores: a task keeps its last ``MAX_LINES`` lines
(older ones are dropped, their numbers are not reused), each cut to
``MAX_CHARS`` characters with a marker saying how much was cut, and one
``m_log`` call returns at most ``READ_LIMIT`` lines. Lines are numbered from 1
(``seq``), so a follower asks for the lines after the last it has.

Where lines come from. Thread store: the records logged from the thread
that runs the body (threads the body starts itself are not followed).
Redis store: the records of the worker process while it runs the task; they
reach the server process over the worker's pipe (``log_relay``) and
are kept in Redis.

Records must get through the logging configuration to be kept: a logger
whose level is above INFO drops them before any handler sees them.
``install()`` adds the capturing handler to the root logger and, if logging
is not configured at all (a root without handlers, at WARNING), lowers the
root's level to INFO; what is printed does not change, since the last-resort
handler still prints only warnings and errors, and this handler passes them
on to it as before.
"""

import collections
import logging
import threading

from .limits import bounded_text
from .defaults import MAX_LOG_CHARS as MAX_CHARS, MAX_LOG_LINES as MAX_LINES

READ_LIMIT = MAX_LINES  # lines one m_log call returns at most

#: Records below this level are not kept.
LEVEL = logging.INFO

LogLine = collections.namedtuple("LogLine", "seq time level message")

_current = threading.local()
_formatter = logging.Formatter("%(message)s")  # the message, and a traceback if any
_install_lock = threading.Lock()


def line_of(record, prefix=""):
    """``(time, level, message)`` of a log record, as a task's log keeps it;
    ``prefix`` is left out of the message if it starts with it."""
    try:
        message = _formatter.format(record)
    except Exception as exc:  # a bad format string must not break the body
        message = "%r (unformattable: %s)" % (record.msg, exc)
    if prefix and message.startswith(prefix):
        message = message[len(prefix):]
    return record.created, record.levelname, bounded_text(message, MAX_CHARS)


class TaskLog:
    """The bounded log of one task, in memory (thread store)."""

    __slots__ = ("lines", "last")

    def __init__(self):
        self.lines = collections.deque(maxlen=MAX_LINES)
        self.last = 0  # seq of the newest line

    def append(self, time, level, message):
        self.last += 1
        self.lines.append(LogLine(self.last, time, level, message))

    def after(self, seq, limit=READ_LIMIT):
        """The lines with ``seq`` greater than ``seq``, oldest first."""
        first = self.last - len(self.lines) + 1
        start = max(0, seq - first + 1)
        return [self.lines[i] for i in range(start, min(len(self.lines), start + limit))]


class capturing:
    """While the ``with`` block runs in this thread, records at ``LEVEL`` and
    above go to ``sink((time, level, message))``."""

    def __init__(self, sink):
        self.sink = sink

    def __enter__(self):
        install()
        self.saved = getattr(_current, "sink", None)
        _current.sink = self.sink

    def __exit__(self, *exc):
        _current.sink = self.saved


class _CaptureHandler(logging.Handler):
    def handle(self, record):
        sink = getattr(_current, "sink", None)
        if sink is not None and record.levelno >= LEVEL:
            try:
                sink(line_of(record))
            except Exception:  # the task log must never break the body
                pass
        # Without us the root would have no handler, and Python would print
        # warnings through its last resort: keep doing that.
        last_resort = logging.lastResort
        if last_resort is not None and record.levelno >= last_resort.level \
                and all(isinstance(h, _CaptureHandler) for h in logging.root.handlers):
            last_resort.handle(record)
        return True

    def emit(self, record):  # handle() does the work
        pass


def install():
    """Add the capturing handler to the root logger (once per process, and
    again if a logging configuration removed it). Called for every task: a
    look at the root's handlers, the lock only when ours is not there."""
    root = logging.root
    if _installed and _installed[0] in root.handlers:
        return
    with _install_lock:
        for handler in root.handlers:
            if isinstance(handler, _CaptureHandler):
                _installed[:] = [handler]
                return
        if not root.handlers and root.level > LEVEL:
            root.setLevel(LEVEL)
        handler = _CaptureHandler()
        root.addHandler(handler)
        _installed[:] = [handler]


_installed = []  # the handler install() added or found last
