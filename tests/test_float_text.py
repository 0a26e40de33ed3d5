"""``tasktypes.float_text``: the texts of floats that the poll's writers
(JSON-RPC's template, SOAP's plan) remember must be repr's, for every
float, signed zeros and repeated values included, and the memory they
take must stay bounded."""

import random
import struct

from tasktypes import float_text as module
from tasktypes.float_text import LIMIT, float_text


def random_floats(count, seed):
    """Finite floats from random bits: every exponent, subnormals included."""
    rng = random.Random(seed)
    found = []
    while len(found) < count:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if value == value and abs(value) != float("inf"):
            found.append(value)
    return found


def test_texts_are_reprs_asked_once_and_again():
    module._texts.clear()
    values = random_floats(LIMIT - 100, seed=14) + [
        1.0, 0.1 + 0.2, 1796632276.4512305, 0.010506629943847656, 5e-324, -5e-324,
        1.7976931348623157e308, 2.0 ** 53, 123456789.0]
    for value in values:
        assert float_text(value) == repr(value)
    assert all(value in module._texts for value in values)  # kept, every one
    for value in values:  # from what was kept, asked with equal new objects
        again = struct.unpack("<d", struct.pack("<d", value))[0]
        assert float_text(again) == repr(value)


def test_what_is_not_kept_is_still_repr_s_text():
    """Infinities, NaN, ints and a float subclass: repr's text, none kept
    (an int must not find the equal float's text)."""
    class Half(float):
        def __repr__(self):
            return "Half(%s)" % float.__repr__(self)
    module._texts.clear()
    assert float_text(1.0) == "1.0"
    for value in (float("inf"), float("-inf"), float("nan"), 1, True, Half(1.0)):
        assert float_text(value) == repr(value)
    assert list(module._texts) == [1.0]


def test_signed_zeros_keep_their_sign():
    for value in (0.0, -0.0, 0.0, -0.0):
        assert float_text(value) == repr(value)
    assert float_text(-0.0) == "-0.0" and float_text(0.0) == "0.0"


def test_texts_kept_are_bounded():
    for value in random_floats(3 * LIMIT, seed=15):
        assert float_text(value) == repr(value)
        assert len(module._texts) <= LIMIT
