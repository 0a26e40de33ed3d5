"""Texts cut to their bounds (the bounds themselves: ``tasktypes.defaults``).

Nothing a caller sends, or a task reports, is kept or logged without a bound:
a progress message or an error text of 9 MB would otherwise be stored, sent
with every poll and written to the log whole. Texts over their bound are cut,
with a marker that says how much was cut, so that a reader sees that they
were. The README's "What the service refuses, and how" lists every limit.
"""

from .defaults import MAX_ERROR, MAX_LOGGED, MAX_MESSAGE  # noqa: F401 (read from here too)
from .defaults import MAX_RESULT as DEFAULT_MAX_RESULT  # noqa: F401


def cut(text, limit):
    """``text`` if it has at most ``limit`` characters, else its start and a
    marker saying how many characters were cut, ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    marker = " [... %d chars cut]" % (len(text) - limit)
    return text[:limit - len(marker)] + marker


def bounded_text(value, limit):
    """``str(value)`` as a store can keep it: valid UTF-8 (a lone surrogate,
    which JSON lets a caller send, becomes its escape ``\\ud800`` instead of
    failing every later write) and ``cut`` to ``limit`` characters."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return cut(text, limit)


def cut_middle(text, limit):
    """Like ``cut``, keeping the end too: a traceback's last line names the
    exception, its first lines where it started."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return "%s\n... [%d chars cut] ...\n%s" % (text[:half], len(text) - 2 * half,
                                               text[-half:])
