"""The errors a task-type method, a JSON-RPC request and a SOAP request can
answer with, and their one table.

Each error is a spyne ``Fault``, so SOAP needs nothing more; ``CODES`` maps
each class to its SOAP faultcode and JSON-RPC error code, and every protocol
reads it from here (walking ``type(exc).__mro__``), so a new error is one
class and one line. ``data`` holds what a JSON-RPC error's ``data`` carries
beyond the faultcode (the task's ``status`` and ``progress`` where they apply).

SOAP's refusals of a request it cannot read are rows of the same table
with ``OTHER_FAULT_CODE`` as their JSON-RPC code: JSON-RPC never answers
with them itself (its parse error, invalid request and invalid params say
the same there), so the OpenRPC document and ``tasktypes.client`` list only
the rows with a code of their own (``jsonrpc_rows``).

    raise TooDeep("elements nested more than 64 deep")  # SOAP: Client.TooDeep
"""

from spyne import Fault
from spyne.error import ValidationError as SpyneValidationError

from .limits import cut

#: Characters of a protocol error's message (it may quote what the client sent).
MAX_PROTOCOL_MESSAGE = 200


class TaskError(Fault):
    """Base of the task errors; the faultcode comes from ``CODES``."""

    def __init__(self, message, **data):
        super().__init__(faultcode=codes_of(type(self))[0], faultstring=message)
        self.data = data


class TaskNotFound(TaskError):
    """Unknown, expired, or belonging to another method."""


class TaskNotFinished(TaskError):
    """``m_result`` asked before the task ended."""


class TaskFailed(TaskError):
    """The body raised; the message is the exception's type and text."""


class TaskCancelled(TaskError):
    """``m_result`` of a task that was cancelled."""


class TaskTimedOut(TaskError):
    """The task ran past its method's ``_time_limit``."""


class IdempotencyConflict(TaskError):
    """An ``Idempotency-Key`` sent again for the same method with other
    arguments (the draft's HTTP 422): a retry must repeat its request."""


class StoreUnavailable(TaskError):
    """The task store (Redis) cannot be reached."""


class Busy(TaskError):
    """The queue of waiting tasks is full, or too many ``m_wait`` calls are
    in progress (``TASKTYPES_MAX_WAITERS``)."""


class ProtocolError(Fault):
    """A JSON-RPC request that is at fault itself, not the method it names
    (the specification's errors, section 5.1)."""

    def __init__(self, message):
        super().__init__(faultcode=codes_of(type(self))[0],
                         faultstring=cut(str(message), MAX_PROTOCOL_MESSAGE))


class ParseError(ProtocolError):
    """Invalid JSON was received."""


class InvalidRequest(ProtocolError):
    """The JSON sent is not a valid request object (or batch)."""


class MethodNotFound(ProtocolError):
    """The method does not exist."""


class InvalidParams(ProtocolError):
    """Invalid method parameters: a wrong type, out of bounds, missing, an unknown name."""


class InternalError(ProtocolError):
    """An unexpected exception; the client sees no traceback."""

    def __init__(self, message="Internal error"):
        super().__init__(message)


class RequestRefused(Fault):
    """A request refused before or while spyne reads it: the client's doing
    (``tasktypes.xmlinput``, ``tasktypes.soap``, ``tasktypes.idempotency``)."""

    def __init__(self, message):
        super().__init__(faultcode=codes_of(type(self))[0], faultstring=message)


class UnsupportedMediaType(RequestRefused):
    """A multipart body (SOAP with attachments): send text/xml."""


class BadRequest(RequestRefused):
    """A request that cannot be read as a SOAP envelope, for any other reason."""


class EmptyRequest(RequestRefused):
    """The request body is empty."""


class UnsupportedEncoding(RequestRefused):
    """An encoding other than UTF-8 or UTF-16, declared or sent."""


class EncodingMismatch(RequestRefused):
    """The bytes are not what the Content-Type or the XML declaration says."""


class XMLSyntaxError(RequestRefused):
    """The body is not well-formed XML."""


class DTDNotAllowed(RequestRefused):
    """A document type declaration: SOAP forbids one."""


class TooManyElements(RequestRefused):
    """More elements than the XML bounds allow (``tasktypes.defaults``)."""


class TooManyAttributes(RequestRefused):
    """More attributes, in all or on one element, than the XML bounds allow."""


class TooDeep(RequestRefused):
    """Elements nested deeper than the XML bounds allow."""


class NameTooLong(RequestRefused):
    """An element or attribute name longer than the XML bounds allow."""


class BadIdempotencyKey(RequestRefused):
    """An ``Idempotency-Key`` header that is not 1 to 255 key characters
    (behind ``make_application`` it is refused with HTTP 400 before any
    method runs; this fault is for a bare spyne server)."""


class ValidationError(SpyneValidationError):
    """An argument that is not of its declared type or out of its bounds:
    the message says which, what was expected and what came.

    A spyne ``ValidationError`` (which spyne's own code catches as such),
    with the message taken as it is (spyne's would ``%``-format it)."""

    def __init__(self, message):
        Fault.__init__(self, faultcode=codes_of(type(self))[0], faultstring=message)


class TaskStopped(BaseException):
    """Raised inside a thread-store body by ``update_progress`` once its task
    is cancelled or timed out. A ``BaseException`` so that a body's own
    ``except Exception:`` does not swallow it."""


#: JSON-RPC code for any other spyne Fault; its faultcode goes into ``data``.
OTHER_FAULT_CODE = -32000


#: error class -> (SOAP faultcode, JSON-RPC error code)
CODES = {
    TaskNotFound: ("Client.TaskNotFound", -32001),
    TaskNotFinished: ("Client.TaskNotFinished", -32002),
    TaskFailed: ("Server.TaskFailed", -32003),
    TaskCancelled: ("Client.TaskCancelled", -32004),
    TaskTimedOut: ("Server.TaskTimedOut", -32005),
    IdempotencyConflict: ("Client.IdempotencyConflict", -32006),
    StoreUnavailable: ("Server.StoreUnavailable", -32010),
    Busy: ("Server.Busy", -32011),
    # JSON-RPC's own (https://www.jsonrpc.org/specification, 5.1)
    ParseError: ("Client.ParseError", -32700),
    InvalidRequest: ("Client.InvalidRequest", -32600),
    MethodNotFound: ("Client.MethodNotFound", -32601),
    InvalidParams: ("Client.InvalidParams", -32602),
    InternalError: ("Server.InternalError", -32603),
    # SOAP's own refusals of a request it cannot read; over JSON-RPC (where a
    # method could only raise one itself) they are any other Fault.
    ValidationError: ("Client.ValidationError", OTHER_FAULT_CODE),  # JSON-RPC: InvalidParams
    UnsupportedMediaType: ("Client.UnsupportedMediaType", OTHER_FAULT_CODE),  # JSON-RPC: HTTP 415
    BadRequest: ("Client.BadRequest", OTHER_FAULT_CODE),
    EmptyRequest: ("Client.EmptyRequest", OTHER_FAULT_CODE),  # JSON-RPC: ParseError
    UnsupportedEncoding: ("Client.UnsupportedEncoding", OTHER_FAULT_CODE),
    EncodingMismatch: ("Client.EncodingMismatch", OTHER_FAULT_CODE),
    XMLSyntaxError: ("Client.XMLSyntaxError", OTHER_FAULT_CODE),
    DTDNotAllowed: ("Client.DTDNotAllowed", OTHER_FAULT_CODE),
    TooManyElements: ("Client.TooManyElements", OTHER_FAULT_CODE),  # JSON-RPC: InvalidRequest
    TooManyAttributes: ("Client.TooManyAttributes", OTHER_FAULT_CODE),
    TooDeep: ("Client.TooDeep", OTHER_FAULT_CODE),
    NameTooLong: ("Client.NameTooLong", OTHER_FAULT_CODE),
    BadIdempotencyKey: ("Client.BadIdempotencyKey", OTHER_FAULT_CODE),
}



def codes_of(cls):
    """(SOAP faultcode, JSON-RPC code) of an error class: its own, or that of
    the nearest class above it in ``CODES`` (a subclass of ``TaskNotFound``
    is a TaskNotFound on the wire)."""
    for klass in cls.__mro__:
        if klass in CODES:
            return CODES[klass]
    return ("Server", OTHER_FAULT_CODE)


def jsonrpc_rows():
    """The rows JSON-RPC answers with a code of their own: what the OpenRPC
    document and the client's exception classes list."""
    return {cls: codes for cls, codes in CODES.items() if codes[1] != OTHER_FAULT_CODE}


def is_client_fault(fault):
    """Whether a Fault (ours or spyne's) says the client is at fault: its
    faultcode is ``Client`` or ``Client.<something>`` (SOAP 1.1, 4.4.1), as
    every ``Client.*`` class of the tables is."""
    code = str(fault.faultcode)
    return code == "Client" or code.startswith("Client.")


def jsonrpc_code(fault):
    """The JSON-RPC error code of a spyne Fault (ours or anybody's)."""
    return codes_of(type(fault))[1]
