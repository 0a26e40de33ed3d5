"""What every runner does around a task body, whichever store it serves:
the ``ctx`` the body gets, the call itself, the progress it reports, and
what clients and the log see of its failure.

    value = run_body(task_type, task_id, args, update_progress)
    update_progress(clamp_progress(0.5))
    store.fail(task_type, task_id, error_text(exc)); logger.error(logged_traceback(exc))
"""

import math
import traceback

from .limits import MAX_ERROR, MAX_LOGGED, bounded_text, cut_middle


class TaskContext:
    """The ``ctx`` a task body receives: plain data, no request objects, so
    that it can cross a process boundary (the Redis store runs bodies in
    child processes)."""

    __slots__ = ("task_id", "method")

    def __init__(self, task_id, method):
        self.task_id = task_id
        self.method = method

    def __repr__(self):
        return "TaskContext(task_id=%r, method=%r)" % (self.task_id, self.method)


def run_body(task_type, task_id, args, update_progress):
    """Call a task body the way every runner does."""
    return task_type.body(TaskContext(task_id, task_type.name), *args,
                          update_progress=update_progress)


def clamp_progress(fraction):
    """The progress a task reports, as stored: a float in [0, 1].

    NaN and non-numbers raise ``ValueError`` inside the task, which then fails
    visibly instead of showing nonsense to every poller.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError("update_progress needs a number between 0 and 1, got %r"
                         % (fraction,))
    fraction = float(fraction)
    if math.isnan(fraction):
        raise ValueError("update_progress got NaN")
    return min(1.0, max(0.0, fraction))


def error_text(exc):
    """What clients see of an exception: its type and message (cut to
    ``MAX_ERROR`` characters), no traceback."""
    try:
        text = bounded_text(exc, MAX_ERROR)
    except BaseException as e:  # its __str__ raised: the task must end all the same
        text = "(no message: its str() raised %s)" % type(e).__name__
    name = type(exc).__name__
    return "%s: %s" % (name, text) if text else name


def logged_traceback(exc):
    """A failed task's traceback for the server's log, bounded: the frames
    (cut in the middle past ``MAX_LOGGED``), then ``error_text``."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return "Traceback (most recent call last):\n%s%s" % (
        cut_middle(frames, MAX_LOGGED), error_text(exc))
