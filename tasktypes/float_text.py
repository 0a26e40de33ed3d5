"""The text of a float as ``repr`` writes it, remembered.

    float_text(1796632276.4512305)   # "1796632276.4512305", repr's text

A poll's reply writes three floats (a task's ``starttime``, ``duration`` and
``progress``), and ``repr``'s search for the shortest digits that read back
as the same float is the largest single piece of the application's work in
a poll: ~7.5 k instructions for a 17-digit float, of the ~90 k a JSON-RPC
poll added to the bare server before (counted by callgrind). The same values come
back poll after poll: a task's ``starttime`` never changes, a finished
task's ``duration`` neither, its progress between two updates. So their
texts are kept, at most ``LIMIT`` of them (all forgotten at once when full,
so that a stream of new values, a running task's durations, costs one dict
insert each and no bookkeeping).

Only exact floats are looked up (an int would find the text of the equal
float: 1 == 1.0; a float subclass may write itself otherwise), and only
finite ones other than zero are kept: 0.0 and -0.0 are equal keys with
different texts, and each NaN is a key no lookup finds again. Any other two
equal floats are the same bits, so a kept text is the text of the value
asked for.
"""

from math import isfinite

#: Texts kept at most (about 0.5 MB when full).
LIMIT = 4096

_texts = {}


def float_text(value):
    """``repr(value)``, remembered where ``value`` is a float."""
    if type(value) is not float:
        return repr(value)
    text = _texts.get(value)
    if text is None:
        text = repr(value)
        if value and isfinite(value):
            if len(_texts) >= LIMIT:
                _texts.clear()
            _texts[value] = text
    return text
