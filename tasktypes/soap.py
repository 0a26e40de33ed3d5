"""SOAP 1.1 as a public endpoint needs it, on spyne's own protocol classes.

``SafeSoap11`` reads requests and refuses what a SOAP message must not
contain; ``FastSoap11`` writes responses, with flat complex types (all fields
simple, such as ``TaskProgressResponse``) written by a plan built once per
class instead of spyne's generic walk per field per call; ``SoapApplication``
serves the WSDL built once, addressed per request.
"""

import io
import re
from urllib.parse import quote
from xml.sax.saxutils import escape

from lxml.etree import SubElement
from spyne import ComplexModelBase, Fault, SimpleModel, XmlAttribute
from spyne.protocol.xml import NIL_ATTR
from spyne.const.http import HTTP_405
from spyne.error import RequestNotAllowed
from spyne.protocol.soap import Soap11
from spyne.server.http import HttpTransportContext
from spyne.server.wsgi import WsgiApplication

from .errors import BadRequest, UnsupportedMediaType, ValidationError
from .float_text import float_text
from .validation import DescribedValidation, expected_type
from .xmlinput import parse_request
from .wsdl import tidy_wsdl

SOAP_PATH = "/soap"

# The WSDL is built once with this address, which each request replaces.
_ADDRESS_PLACEHOLDER = "http://tasktypes.invalid/soap"


class SafeSoap11(DescribedValidation, Soap11):
    """SOAP 1.1 that refuses what a SOAP message must not contain, and
    bounds what one request may cost.

    The body is read by ``tasktypes.xmlinput.parse_request``: UTF-8 or
    UTF-16 only, checked against every declaration; no DTD (looked for in
    the decoded text; nothing is ever loaded or expanded); bounded elements,
    attributes, depth and names, checked before spyne walks the tree.
    SOAP with attachments (multipart bodies) is not supported and refused.
    Any error while reading a request that is not already a fault becomes a
    client fault (``Client.BadRequest``), never an empty HTTP 500. A value
    that fails validation is a fault that says which parameter, what type
    and what came (``DescribedValidation``).
    """

    def create_in_document(self, ctx, charset=None):
        content_type = ctx.transport.get_request_content_type() \
            if isinstance(ctx.transport, HttpTransportContext) else None
        if isinstance(ctx.transport, HttpTransportContext):
            if content_type is None or ctx.transport.get_request_method() != "POST":
                ctx.transport.resp_code = HTTP_405
                raise RequestNotAllowed("You must issue a POST request with the "
                                        "Content-Type header properly set.")
            if content_type.lstrip().lower().startswith("multipart/"):
                raise UnsupportedMediaType("multipart bodies (SOAP with attachments) "
                                           "are not supported: send text/xml")
        try:
            ctx.in_document = parse_request(b"".join(ctx.in_string), content_type)
        except Fault:
            raise
        except Exception as exc:
            raise BadRequest("the request cannot be read: %s"
                             % type(exc).__name__) from None

    def decompose_incoming_envelope(self, ctx, message=Soap11.REQUEST):
        try:
            super().decompose_incoming_envelope(ctx, message)
        except Fault:
            raise
        except Exception as exc:
            raise BadRequest("not a SOAP envelope: %s" % type(exc).__name__) from None

    def deserialize(self, ctx, message):
        # spyne lets a NaN meet a Double's bounds as a bare decimal error, and
        # odd documents as other plain exceptions: the client's doing, so a
        # client fault, never an empty HTTP 500.
        try:
            super().deserialize(ctx, message)
        except Fault as fault:
            raise _described_missing(ctx, fault) from None
        except ArithmeticError:
            raise ValidationError("a number is NaN, infinite or out of range for "
                                  "its type") from None
        except Exception as exc:
            raise BadRequest("the request cannot be read: %s"
                             % type(exc).__name__) from None


_MISSING = re.compile(r"^'(\w+)' member does not respect frequency constraints\.$")


def _described_missing(ctx, fault):
    """spyne's fault for a missing argument ("'steps' member does not respect
    frequency constraints.", spyne 2.14.0's text) as the others read: which
    argument, what type."""
    found = _MISSING.match(str(fault.faultstring))
    descriptor = getattr(ctx, "descriptor", None)
    if found is None or descriptor is None:
        return fault
    message = descriptor.in_message
    cls = message.get_flat_type_info(message).get(found.group(1))
    if cls is None:
        return fault
    return ValidationError("%s: expected %s, got nothing"
                           % (found.group(1), expected_type(cls)))


class SoapApplication(WsgiApplication):
    """spyne's WSGI server with the WSDL built once and addressed per request,
    and, given ``direct`` (a ``tasktypes.direct_soap.DirectSoap``), the
    submit and control methods of task types answered without spyne's
    per-call machinery where the request is plainly one such call."""

    def __init__(self, app, public_url=None, max_body=None, direct=None):
        # spyne refuses bodies over its own max_content_length (2 MiB) with
        # Client.RequestTooLong: the application's limit (TASKTYPES_MAX_BODY,
        # HTTP 413 before reading) is the one that must hold.
        super().__init__(app, max_content_length=max_body or 2 * 1024 * 1024)
        self.public_url = public_url and public_url.rstrip("/") + SOAP_PATH
        self.doc.wsdl11.build_interface_document(_ADDRESS_PLACEHOLDER)
        self._wsdl = tidy_wsdl(self.doc.wsdl11.get_interface_document())
        self._wsdl_parts = self._wsdl.split(_ADDRESS_PLACEHOLDER.encode())
        self.direct = direct if direct is not None and direct.methods else None

    def __call__(self, environ, start_response, wsgi_url=None):
        if self.direct is not None and environ.get("REQUEST_METHOD") == "POST":
            reply = self._direct_reply(environ)
            if reply is not None:
                status, body = reply
                start_response(status, [("Content-Type", self.direct.mime_type),
                                        ("Content-Length", str(len(body)))])
                return [body]
        return super().__call__(environ, start_response, wsgi_url)

    def _direct_reply(self, environ):
        """(status, bytes) from the direct path, or None for spyne's. Only
        where no one listens to spyne's events, which that path skips."""
        content_type = environ.get("CONTENT_TYPE")
        length = environ.get("CONTENT_LENGTH")
        if not content_type or not length or not length.isdigit() \
                or int(length) > self.direct.max_body \
                or content_type.lstrip().lower().startswith("multipart/") \
                or any(self.event_manager.handlers.values()):
            return None  # the method's own listeners: DirectSoap.reply
        body = environ["wsgi.input"].read(int(length))
        reply = self.direct.reply(body, content_type, environ)
        if reply is None:  # spyne reads the same bytes again
            environ["wsgi.input"] = io.BytesIO(body)
        return reply

    def handle_wsdl_request(self, environ, start_response, url):
        address = self.public_url or request_url(environ)
        wsdl = escape(address, {'"': "&quot;"}).encode("utf-8").join(self._wsdl_parts)
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"),
                                  ("Content-Length", str(len(wsdl)))])
        return [wsdl]


def request_url(environ):
    """The address this request came to, without the query string."""
    host = environ.get("HTTP_HOST") or "%s:%s" % (environ["SERVER_NAME"],
                                                  environ["SERVER_PORT"])
    return "%s://%s%s%s" % (environ["wsgi.url_scheme"], host,
                            quote(environ.get("SCRIPT_NAME", "")),
                            quote(environ.get("PATH_INFO", "")))




class FastSoap11(Soap11):
    """spyne's SOAP 1.1 output, with flat complex types written by a plan.

    spyne writes each field of a ComplexModel through its generic machinery
    (class attributes, polymorphism, push protocols) on every call; for a type
    whose fields are all simple and single, the plan (tag, field class,
    to-text handler, min_occurs) is the same every time, so it is built once.
    Anything else, and any instance that asks for an xsi:type, goes to spyne.
    The output is the same document spyne writes (``tests/test_soap.py``).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plans = {}

    def complex_to_parent(self, ctx, cls, inst, parent, ns, name=None,
                          add_type=False, **kwargs):
        plan = self._plans.get(cls)
        if plan is None:
            plan = self._plans[cls] = self._plan(cls) or False
        if plan is False or add_type:
            return super().complex_to_parent(ctx, cls, inst, parent, ns, name,
                                              add_type, **kwargs)
        tag, fields = plan
        if tag is None:
            tag = "{%s}%s" % (ns, name or cls.get_type_name())
        inst = cls.get_serialization_instance(inst)
        elt = SubElement(parent, tag)
        for attr, sub_tag, field_cls, to_text, required in fields:
            value = getattr(inst, attr, None)
            if value is not None:
                SubElement(elt, sub_tag).text = to_text(field_cls, value)
            elif required:
                SubElement(elt, sub_tag).attrib.update(NIL_ATTR)

    def _plan(self, cls):
        """(tag or None, fields) for a flat complex type; None for any other."""
        attrs = self.get_cls_attrs(cls)
        if getattr(cls, "__extends__", None) is not None or attrs.prot is not None \
                or attrs.sub_ns is not None or attrs.sub_name is not None:
            return None
        fields = []
        ns = cls.get_namespace()
        for attr, field_cls in cls._type_info.items():
            fa = self.get_cls_attrs(field_cls)
            if not issubclass(field_cls, SimpleModel) or issubclass(field_cls, (
                    ComplexModelBase, XmlAttribute)) or fa.max_occurs != 1 or fa.exc \
                    or fa.prot is not None or fa.sub_ns is not None \
                    or fa.sub_name is not None or fa.default is not None \
                    or self.serialization_handlers[field_cls] != self.modelbase_to_parent:
                return None
            fields.append((attr, "{%s}%s" % (ns, attr), field_cls,
                           self._to_text(field_cls, fa), fa.min_occurs > 0))
        return None, fields

    def plan_fields(self, cls):
        """The plan's fields of ``cls``, ``(attr, tag, field class, to_text,
        required)`` each, or None if instances of ``cls`` are not written by
        a plan (then ``complex_to_parent`` must not be called for one
        directly)."""
        if not (isinstance(cls, type) and issubclass(cls, ComplexModelBase)):
            return None
        plan = self._plans.get(cls)
        if plan is None:
            plan = self._plans[cls] = self._plan(cls) or False
        return None if plan is False else plan[1]

    def _to_text(self, field_cls, attrs):
        """spyne's to-text handler of a field class, or the same thing
        without its class-attribute lookups and debug logging for integers,
        doubles and strings with no format (``OutProtocolBase``'s
        ``integer_to_unicode``, ``double_to_unicode``, ``unicode_to_unicode``,
        spyne 2.14)."""
        handler = self._to_unicode_handlers[field_cls]
        if attrs.str_format is not None or attrs.format is not None:
            return handler
        if handler == self.integer_to_unicode:
            return _integer_text
        if handler == self.double_to_unicode:
            return _double_text
        if handler == self.unicode_to_unicode:
            def unicode_text(cls, value):
                return value if type(value) is str else handler(cls, value)
            return unicode_text
        return handler


def _integer_text(cls, value):
    int(value)  # spyne's sanity check: a TypeError or ValueError as there
    return str(value)


def _double_text(cls, value):
    if type(value) is float:  # a task's starttime, duration, progress
        return float_text(value)  # repr's text, remembered
    float(value)  # the same
    return repr(value)


#: The to-text functions of plans whose texts are plain ASCII numbers.
NUMBER_TEXTS = frozenset((_integer_text, _double_text))
