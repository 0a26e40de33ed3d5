"""Idempotent submission: the ``Idempotency-Key`` HTTP header
(draft-ietf-httpapi-idempotency-key-header) on a request that submits one
task, over SOAP and JSON-RPC.

    curl ... -H 'Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"' \\
         -d '{"jsonrpc": "2.0", "method": "countdown", "params": [5, 0.5], "id": 1}'

A client whose submit timed out cannot know whether the task started. With
a key it sends the same request again and gets the first task's id instead
of a second task. Each store keeps, per method and key, the first task's id
and a fingerprint of its arguments (``fingerprint``) for the result TTL
(``TASKTYPES_RESULT_TTL``) counted from that first submit; a task always
outlives its key, since it is kept that long after it *ends*. The same key
with other arguments is ``IdempotencyConflict`` (the draft's 422); the same
key for another method is another key.

The key is what the draft says, an RFC 8941 sf-string (``"..."``), or the
same characters bare, as many clients send it; both name the same key. It
is 1 to ``MAX_IDEMPOTENCY_KEY`` characters of ``A-Z a-z 0-9 - _ . : ~ + /
=`` (a UUID, a ULID, base64), without parameters. Anything else (a second
header line, a list, spaces, escapes, too long) is refused with HTTP 400
before any method runs (``check_header``), as the draft's security
considerations ask: a key is never kept unchecked. Keys should be random:
whoever sends a known key with the same arguments gets that task's id.

Where the key applies: a SOAP request is one call; a JSON-RPC request
carrying the header must be one call (an object, or a batch of one), and a
larger batch is refused whole with -32600, so that a key never stands for
two submits. On a call that submits nothing the key is checked and ignored
(reads are safe to repeat anyway).
"""

import hashlib
import json
import re



from .defaults import MAX_IDEMPOTENCY_KEY
from .errors import BadIdempotencyKey, IdempotencyConflict

#: The header in a WSGI environ.
ENVIRON_KEY = "HTTP_IDEMPOTENCY_KEY"

_KEY = re.compile(r'(?:"([A-Za-z0-9._:~+/=-]{1,%d})"|([A-Za-z0-9._:~+/=-]{1,%d}))\Z'
                  % (MAX_IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY))


def parse_key(value):
    """The key of a header value (``"abc"`` or ``abc``); ``ValueError``
    saying what is wrong otherwise."""
    value = value.strip(" \t")
    found = _KEY.match(value)
    if found is None:
        if len(value[1:-1] if value[:1] == '"' else value) > MAX_IDEMPOTENCY_KEY:
            reason = "longer than %d characters" % MAX_IDEMPOTENCY_KEY
        elif "," in value:
            reason = "more than one value (one header line, one key)"
        else:
            reason = "not 1 to %d characters of A-Z a-z 0-9 - _ . : ~ + / =, " \
                     "bare or in double quotes" % MAX_IDEMPOTENCY_KEY
        raise ValueError("bad Idempotency-Key header: %s" % reason)
    return found.group(1) or found.group(2)


def check_header(environ):
    """None if the request carries no ``Idempotency-Key`` or a good one; the
    reason (text for an HTTP 400) otherwise."""
    value = environ.get(ENVIRON_KEY)
    if value is None:
        return None
    try:
        parse_key(value)
    except ValueError as exc:
        return "%s\n" % exc
    return None


def request_key(ctx):
    """The ``Idempotency-Key`` of the HTTP request of spyne context ``ctx``,
    or None. ``make_application`` has refused bad keys already; behind a
    bare spyne server one is a ``Client.BadIdempotencyKey`` fault here."""
    environ = getattr(ctx.transport, "req_env", None)
    value = None if environ is None else environ.get(ENVIRON_KEY)
    if value is None:
        return None
    try:
        return parse_key(value)
    except ValueError as exc:
        raise BadIdempotencyKey(str(exc)) from None


def fingerprint(task_type, args):
    """A hash of the method and its canonical arguments: the same for the
    same call on either protocol and in any process (keys sorted, sets
    ordered, complex values as their fields)."""
    text = json.dumps([task_type.key, list(args)], sort_keys=True, default=_canonical,
                      separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _canonical(value):
    as_dict = getattr(value, "as_dict", None)  # a spyne ComplexModel
    if callable(as_dict):
        return as_dict()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    isoformat = getattr(value, "isoformat", None)  # dates, times
    if callable(isoformat):
        return isoformat()
    return "%s:%s" % (type(value).__name__, value)


def conflict(method, key):
    """The error of ``key`` sent again for ``method`` with other arguments.
    It names no task id: the arguments are the proof of a retry."""
    return IdempotencyConflict(
        "Idempotency-Key %s was used for a %s task with other arguments; a retry "
        "must repeat its request, a new task needs a new key" % (key, method))


class KeyMap:
    """The keys of ``ThreadStore``: ``(method, key) -> (task id, fingerprint,
    expiry)``, with the task id's key to forget it with the task. At most
    one entry per kept task, so it is bounded as the tasks are; not
    thread-safe (the store calls it under its lock)."""

    def __init__(self):
        self._entries = {}
        self._by_task = {}

    def find(self, method, key, fingerprint, now):
        """The id of the task that ``key`` of ``method`` names, None if it
        names none (or no longer); ``IdempotencyConflict`` if it was given
        with other arguments."""
        entry = self._entries.get((method, key))
        if entry is None or entry[2] <= now:
            return None
        if entry[1] != fingerprint:
            raise conflict(method, key)
        return entry[0]

    def add(self, method, key, fingerprint, task_id, expires):
        old = self._entries.get((method, key))
        if old is not None:  # an expired key used again
            self._by_task.pop(old[0], None)
        self._entries[(method, key)] = (task_id, fingerprint, expires)
        self._by_task[task_id] = (method, key)

    def forget(self, task_id):
        """The task is gone: so is its key."""
        name = self._by_task.pop(task_id, None)
        if name is not None:
            self._entries.pop(name, None)

    def __len__(self):
        return len(self._entries)
