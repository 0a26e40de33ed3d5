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
    values = random_floats(5000, seed=14) + [
        1.0, 0.1 + 0.2, 1796632276.4512305, 0.010506629943847656, 5e-324, -5e-324,
        1.7976931348623157e308, 2.0 ** 53, 123456789.0, float("inf"), float("-inf")]
    for _ in range(2):  # the second time from what was kept
        for value in values:
            assert float_text(value) == repr(value)


def test_signed_zeros_keep_their_sign():
    for value in (0.0, -0.0, 0.0, -0.0):
        assert float_text(value) == repr(value)
    assert float_text(-0.0) == "-0.0" and float_text(0.0) == "0.0"


def test_texts_kept_are_bounded():
    for value in random_floats(3 * LIMIT, seed=15):
        assert float_text(value) == repr(value)
        assert len(module._texts) <= LIMIT
