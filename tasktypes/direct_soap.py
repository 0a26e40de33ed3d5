"""The control methods of task types, and their submits, answered over SOAP
without spyne's per-call machinery: what ``tasktypes.direct`` does for
JSON-RPC (which says which methods, and why they may be).

Through spyne, a SOAP progress poll builds a ``MethodContext``, fires some
fifteen events, walks the request through the generic deserializer and
writes the response wrapper through the generic serializer (class
attributes looked up some eighteen times): about 200 µs of the 260 µs the
application spends on it. Here a request whose envelope is plainly one
such call is answered with the same function spyne would call:

- the body is read by the same ``tasktypes.xmlinput.parse_request`` as
  spyne's path (encodings, no DTD, the counts that bound what the parser
  builds), with ``plain=True``: no id lookup and no structure walk, which
  the only shape taken here passes by construction (four levels, known
  names, no attributes); any other document goes to spyne, whose reading
  walks it whole;
- the envelope must be exactly ``Envelope/Body/<method>/<param>...``: no
  SOAP header, no attribute on any of these elements (no ``xsi:nil``,
  ``xsi:type``, ``id``/``href``, encodingStyle), no comment among them, each
  param once, qualified by the service's namespace, holding plain digits
  (and a decimal point for a Double), or text (no child element, not
  empty), that pass the param type's own spyne checks;
- the response is written by the protocol's own writers below the method's
  response wrapper; a result of a type that ``tasktypes.soap.FastSoap11``
  writes by a plan (``TaskProgressResponse``) from a template: the
  document the plan writes, cut once at its fields' texts, filled with the
  plan's own to-text of each field (a text that needs more than escaping
  ``<``, ``>`` and ``&`` is written by lxml instead). Faults are written by
  the protocol's fault writer. Both go out as spyne's pipeline sends them:
  the same status, headers and bytes (``tests/test_direct_soap.py``
  compares the two).

Anything else (a header, another namespace for a param, a value with
blanks, a missing or extra element, a bad encoding, a DTD) goes through
spyne's full pipeline, so every error keeps the fault it has there. User
methods always go through spyne.

    direct = DirectSoap(soap_app)        # soap_app: spyne Application, SOAP
    reply = direct.reply(body, content_type, environ)  # (status, bytes) or None
"""

import logging
import re

from lxml import etree
from spyne import BODY_STYLE_WRAPPED, Double, Fault, Integer, Unicode
from spyne.application import get_fault_string_from_exception
from spyne.const.http import HTTP_200
from spyne.const.xml import NS_XSI
from spyne.protocol.soap.soap11 import Soap11

from .defaults import MAX_DIRECT_SOAP_BODY
from .direct import (NOT_DIRECT, ControlContext, direct_descriptors, event_managers,
                     listened, param_reader)
from .soap import NUMBER_TEXTS as _NUMBER_TEXTS
from .xmlinput import parse_request

# spyne's own loggers for what a method raised (spyne.application, 2.14),
# so that the same filters (tasktypes.app.quiet_spyne_logs) apply.
_logger_client = logging.getLogger("spyne.application.client")
_logger_server = logging.getLogger("spyne.application.server")
_logger_output = logging.getLogger("spyne.server.wsgi")

#: Text of a param taken directly: an Integer64 in plain decimal, a Double
#: as digits with an optional fraction, any text for a Unicode (its type's
#: checks then say). Anything else (blanks, signs, exponents, "NaN") is
#: spyne's to read.
_INTEGER_TEXT = re.compile(r"(?:0|-?[1-9][0-9]{0,17})\Z")
_DECIMAL_TEXT = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,16})?\Z")
_ANY_TEXT = re.compile(r"(?s).*\Z")
#: Text that lxml writes as it is, but for <, > and &: tabs, newlines and
#: printable characters (no \r, which it writes as &#13;; no control
#: characters, which it refuses; no surrogates or U+FFFE/U+FFFF).
_PLAIN_TEXT = re.compile("[\t\n\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*\\Z")


class _Param:
    __slots__ = ("index", "pattern", "convert", "read")

    def __init__(self, index, pattern, convert, read):
        self.index = index
        self.pattern = pattern
        self.convert = convert
        self.read = read


def _param(index, cls):
    """How one param's text becomes its value, or None if its type is not
    one read here."""
    read = param_reader(cls)
    if read is None:
        return None
    if issubclass(cls, Integer):
        return _Param(index, _INTEGER_TEXT, int, read)
    if issubclass(cls, Double):
        return _Param(index, _DECIMAL_TEXT, float, read)
    if issubclass(cls, Unicode):
        # spyne 2.14's Soap11.unicode_from_element: validate_string of the
        # text, the text itself, validate_native (``read``); an empty
        # element (text None: a nil check, then "") is spyne's to read
        return _Param(index, _ANY_TEXT, str, read)
    return None


class _Method:
    """One submit or control method: its params by tag, its function and
    the way its result is written below the response wrapper."""

    def __init__(self, app, descriptor):
        if descriptor.body_style is not BODY_STYLE_WRAPPED:
            raise _NotDirect
        self.app = app
        self.function = descriptor.function
        self.event_managers = event_managers(app, descriptor)
        self.params = {}
        in_message = descriptor.in_message
        ns = in_message.get_namespace()
        for index, (name, cls) in enumerate(in_message._type_info.items()):
            param = _param(index, cls)
            if param is None or cls.Attributes.sub_name is not None \
                    or cls.Attributes.sub_ns is not None:
                raise _NotDirect
            self.params["{%s}%s" % (ns, name)] = param
        self.count = len(self.params)
        out_message = descriptor.out_message
        out_attrs = app.out_protocol.get_cls_attrs(out_message)
        members = list(out_message._type_info.items())
        if len(members) != 1 or getattr(out_message, "__extends__", None) is not None \
                or out_attrs.sub_name is not None or out_attrs.sub_ns is not None \
                or out_attrs.prot is not None:
            raise _NotDirect
        # Soap11.serialize, BODY_STYLE_WRAPPED, and XmlDocument's
        # complex_to_parent / _get_members_etree for the wrapper (spyne
        # 2.14), written out for its one member.
        self.wrapper_tag = "{%s}%s" % (out_message.get_namespace(),
                                       out_message.get_type_name())
        name, cls = members[0]
        attrs = cls.Attributes
        if attrs.max_occurs != 1 or app.out_protocol.get_cls_attrs(cls).exc:
            raise _NotDirect
        self.result_cls = cls
        self.result_ns = attrs.sub_ns or out_message.get_namespace()
        self.result_name = attrs.sub_name or name
        self.result_required = attrs.min_occurs > 0
        protocol = app.out_protocol
        # A result written by a plan (tasktypes.soap.FastSoap11) goes under
        # an envelope declaring only the namespaces it can use, in the order
        # of the interface's: what is left of the whole map after
        # cleanup_namespaces is then the same.
        plan_fields = getattr(protocol, "plan_fields", None)
        self.fields = plan_fields and plan_fields(cls)
        self.nsmap = app.interface.nsmap
        self.template = None
        if self.fields is not None:
            used = {protocol.ns_soap_env, NS_XSI, out_message.get_namespace(),
                    cls.get_namespace()}
            self.nsmap = {prefix: uri for prefix, uri in self.nsmap.items()
                          if uri in used}

    def read(self, call):
        """The function's arguments from the method element, or None."""
        if len(call) != self.count or call.keys():
            return None
        args = [None] * self.count
        seen = 0
        for child in call:
            param = self.params.get(child.tag)
            if param is None or len(child) or child.keys():
                return None
            text = child.text
            if text is None or not param.pattern.match(text):
                return None
            value = param.read(param.convert(text))
            if value is NOT_DIRECT:
                return None
            seen |= 1 << param.index
            args[param.index] = value
        if seen != (1 << self.count) - 1:
            return None  # a param twice, another missing
        return args


class _NotDirect(Exception):
    """A method whose params or response this module does not write."""


class DirectSoap:
    """The direct answers of one SOAP spyne application's submits and controls."""

    #: Bodies larger than this are no plain direct call: left to spyne
    #: unparsed (see tasktypes.defaults).
    max_body = MAX_DIRECT_SOAP_BODY

    def __init__(self, app):
        protocol = app.out_protocol
        if not isinstance(protocol, Soap11) or not isinstance(app.in_protocol, Soap11):
            raise TypeError("DirectSoap needs SOAP 1.1 in and out protocols")
        self.app = app
        self.protocol = protocol
        self.envelope_tag = "{%s}Envelope" % protocol.ns_soap_env
        self.body_tag = "{%s}Body" % protocol.ns_soap_env
        self.nsmap = app.interface.nsmap
        self.tns = app.interface.get_tns()
        self.mime_type = protocol.mime_type
        self.utf8 = protocol.encoding.lower().replace("-", "") == "utf8"
        self.methods = {}
        if app.in_protocol.validator not in (None, "soft", app.in_protocol.SOFT_VALIDATION):
            return  # schema validation (validator="lxml") is spyne's to run
        for descriptor in direct_descriptors(app):
            try:
                method = _Method(app, descriptor)
            except _NotDirect:
                continue
            self.methods["{%s}%s" % (descriptor.in_message.get_namespace(),
                                     descriptor.in_message.get_type_name())] = method

    def reply(self, body, content_type, environ):
        """(HTTP status, response bytes) of a request that is plainly one
        submit or control call, or None: then spyne's pipeline answers it."""
        if len(body) > self.max_body:
            return None
        try:
            root, ids = parse_request(body, content_type, plain=True)
        except Fault:
            return None  # spyne's path refuses it the same way, and logs it
        if ids or root.tag != self.envelope_tag or len(root) != 1 or root.keys():
            return None
        soap_body = root[0]
        if soap_body.tag != self.body_tag or len(soap_body) != 1 or soap_body.keys():
            return None
        call = soap_body[0]
        method = self.methods.get(call.tag)
        if method is None or listened(method.event_managers):
            return None
        args = method.read(call)
        if args is None:
            return None
        try:
            result = method.function(ControlContext(self.app, environ), *args)
        except Fault as fault:
            # as Application.process_request logs it (spyne 2.14)
            if fault.faultcode == "Client" or fault.faultcode.startswith("Client."):
                _logger_client.exception(fault)
            else:
                _logger_server.exception(fault)
            return self.fault(fault)
        except Exception as exc:
            _logger_server.critical(exc, exc_info=1)
            return self.fault(Fault("Server", get_fault_string_from_exception(exc)))
        try:
            return HTTP_200, self._write(method, result)
        except Exception as exc:  # as WsgiApplication.handle_rpc (spyne 2.14)
            _logger_output.exception(exc)
            return self.fault(Fault("Server", get_fault_string_from_exception(exc)))

    def _template(self, method):
        """The response of a plan result as text around its fields' texts:
        the document the plan writes for marker texts, cut at the markers."""
        envelope = etree.Element(self.envelope_tag, nsmap=method.nsmap)
        wrapper = etree.SubElement(etree.SubElement(envelope, self.body_tag),
                                   method.wrapper_tag)
        result = etree.SubElement(wrapper, "{%s}%s" % (method.result_ns,
                                                       method.result_name))
        markers = []
        for index, (_, tag, _, _, _) in enumerate(method.fields):
            markers.append("tasktypes-field-%d-of-the-template" % index)
            etree.SubElement(result, tag).text = markers[-1]
        text = self._string(envelope).decode("utf-8")
        pieces = []
        for marker in markers:
            if text.count(marker) != 1:
                return False
            piece, text = text.split(marker)
            pieces.append(piece)
        pieces.append(text)
        return pieces

    def _write_text(self, method, result):
        """The response from the template, or None where lxml's own writing
        is needed (a field missing, a text with a character that needs more
        than escaping <, > and &)."""
        pieces = method.template
        if pieces is None:
            pieces = method.template = self._template(method)
        if pieces is False:
            return None
        out = [pieces[0]]
        append = out.append
        values = result.__dict__
        for (attr, _, field_cls, to_text, _), piece in zip(method.fields, pieces[1:]):
            value = values.get(attr)
            if value is None:
                return None
            text = to_text(field_cls, value)
            # an int's or float's digits, sign, ".", "e", "inf", "nan" need nothing
            if type(value) not in (int, float) or to_text not in _NUMBER_TEXTS:
                if not _PLAIN_TEXT.match(text):
                    return None
                if "&" in text or "<" in text or ">" in text:
                    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            append(text)
            append(piece)
        return "".join(out).encode("utf-8")

    def _write(self, method, result):
        """The response document of a result, as spyne writes it."""
        if method.fields is not None and self.utf8 and type(result) is method.result_cls:
            written = self._write_text(method, result)
            if written is not None:
                return written
        return self._write_tree(method, result)

    def _write_tree(self, method, result):
        """The response written with lxml: Soap11.serialize's success branch
        (spyne 2.14) below the envelope; a plan result straight to the plan."""
        protocol = self.protocol
        if method.fields is not None and type(result) is method.result_cls:
            envelope = etree.Element(self.envelope_tag, nsmap=method.nsmap)
            wrapper = etree.SubElement(etree.SubElement(envelope, self.body_tag),
                                       method.wrapper_tag)
            protocol.complex_to_parent(None, method.result_cls, result, wrapper,
                                       method.result_ns, method.result_name)
            return self._string(envelope)
        # the body built on its own, then appended to the envelope, as there
        envelope = etree.Element(self.envelope_tag, nsmap=self.nsmap)
        soap_body = etree.Element(self.body_tag)
        wrapper = etree.SubElement(soap_body, method.wrapper_tag)
        if result is not None or method.result_required:
            protocol.to_parent(None, method.result_cls, result, wrapper,
                               method.result_ns, method.result_name)
        envelope.append(soap_body)
        return self._string(envelope)

    def fault(self, fault):
        """(HTTP status, bytes) of a fault, as spyne writes it."""
        protocol = self.protocol
        envelope = etree.Element(self.envelope_tag, nsmap=self.nsmap)
        soap_body = etree.SubElement(envelope, self.body_tag, nsmap=self.nsmap)
        protocol.to_parent(None, fault.__class__, fault, soap_body, self.tns)
        return protocol.fault_to_http_response_code(fault), self._string(envelope)

    def _string(self, envelope):
        protocol = self.protocol
        if protocol.cleanup_namespaces:
            etree.cleanup_namespaces(envelope)
        return etree.tostring(envelope, encoding=protocol.encoding,
                              pretty_print=protocol.pretty_print,
                              xml_declaration=protocol.xml_declaration)
