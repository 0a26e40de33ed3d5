"""The JSON text of JSON-RPC: a request body parsed so that no number can
cost the reply of the whole request, replies encoded so that any text goes
out, and client input quoted short in messages and log lines.

    doc = parse_json(body)        # ParseError (-32700) if it is not JSON
    body = encode(reply)          # bytes

Apart from the protocol (``jsonrpc_protocol``) because the HTTP layer
(``jsonrpc``) reads and writes the same text outside spyne's stages: a
batch is parsed once and its replies joined, and the direct answers
(``direct``) are encoded there too.
"""

import json

from tasktypes.errors import ParseError

#: Longest error message or log line quoting client input, in characters.
MAX_QUOTE = 200
#: The content type of every reply.
JSON_TYPE = "application/json; charset=utf-8"


def short(text, limit=MAX_QUOTE):
    """``text`` cut to ``limit`` characters for a message or a log line,
    saying how long it was."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


class Unrepresentable:
    """A number in a request that Python cannot hold as JSON can say it
    (``1e400`` parses to infinity; an integer of more than 4300 digits does
    not parse). Kept as this marker, it is no valid id and no valid param,
    so it costs its own call an error and never the reply of the whole
    request (writing infinity back out would fail)."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return short(self.text, 40)


def _parse_float(text):
    value = float(text)
    return value if value - value == 0 else Unrepresentable(text)  # not inf


def _parse_int(text):
    try:
        return int(text)
    except ValueError:
        return Unrepresentable(text)


_decode = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float,
                           parse_int=_parse_int).decode
_encode_utf8 = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                allow_nan=False).encode
#: JSON as ASCII text (escapes for the rest): replies, and values quoted in messages.
encode_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def encode(doc):
    """A JSON value as the bytes of a reply: UTF-8, or ASCII with escapes
    where the text holds a lone surrogate."""
    try:
        return _encode_utf8(doc).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates ("\ud800" came in, goes out)
        return encode_ascii(doc).encode("ascii")


class JsonText(str):
    """JSON text written already (``ResultWriters._direct_result_writer``):
    a direct reply puts it in as it is, where a JSON value is encoded."""

    __slots__ = ()


_WHITESPACE = json.decoder.WHITESPACE
#: The scanner of a decoder like ``_decode`` but for ints, which it reads in
#: C: an int it cannot hold (over 4300 digits) raises ValueError there, and
#: ``parse_json`` then asks ``_decode``, whose hook keeps it Unrepresentable.
_scan = json.JSONDecoder(parse_constant=_reject_constant,
                         parse_float=_parse_float).scan_once


def parse_json(body):
    """A request body (bytes) as JSON; any failure is a parse error (-32700)."""
    try:
        text = body.decode("utf-8")
        try:  # a value with no white space before it: the decoder's scanner alone
            doc, end = _scan(text, 0)
        except json.JSONDecodeError:
            raise  # what _decode would say, at the same place: no second parse
        except (StopIteration, ValueError):
            return _decode(text)  # white space first, or an int: the decoder says
        if end == len(text):  # the usual body: nothing after the value
            return doc
        stop = _WHITESPACE.match(text, end).end()  # as JSONDecoder.decode does
        if stop != len(text):
            raise json.JSONDecodeError("Extra data", text, stop)
        return doc
    except UnicodeDecodeError as e:
        raise ParseError("Parse error: body is not UTF-8 (%s)" % e.reason) from None
    except ValueError as e:
        raise ParseError("Parse error: %s" % e) from None
    except RecursionError:
        raise ParseError("Parse error: nested too deeply") from None
