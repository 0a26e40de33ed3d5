"""What a client is told when an argument fails validation: which parameter,
what was expected, what came.

spyne's own message is ``The value None could not be validated.``, which names
neither. Both protocols say instead, for instance::

    steps: expected int (0 to 10000), got '20000'
    task_id: expected long, got child elements (<task_id>)

(the second is what suds sends when it is given the ``TaskInfoResponse``
object instead of the task id inside it). The type names are the WSDL's
(``int``, ``long``, ``double``, ``string``), the ones the contract uses.
"""

import math

from spyne.error import ValidationError as SpyneValidationError
from spyne.model.primitive import Unicode
from spyne.const.xml import NS_XSD

from .errors import ValidationError

#: Longest quote of a client's value in a message, in characters.
MAX_QUOTE = 80


def type_name(cls):
    """The XML Schema name of ``cls`` (``int``), or its own name (a
    ComplexModel's), never the name spyne makes up for a bounded argument
    (``countdown_stepsType``)."""
    for klass in cls.__mro__:
        # the name a class set itself (spyne 2.14.0's ModelBase.__type_name__),
        # not one inherited or made up
        name = klass.__dict__.get("__type_name__")
        if name and klass.get_namespace() == NS_XSD:
            return name
    return cls.get_type_name()


def expected_type(cls):
    """``cls`` as a client should read it: ``int (0 to 10000)``, ``string (at
    most 200 characters)``."""
    attrs = cls.Attributes
    bounds = []
    low = _finite(getattr(attrs, "ge", None)), _finite(getattr(attrs, "gt", None))
    high = _finite(getattr(attrs, "le", None)), _finite(getattr(attrs, "lt", None))
    if low[0] is not None and high[0] is not None:
        bounds.append("%s to %s" % (low[0], high[0]))
    else:
        for value, text in ((low[0], ">= %s"), (low[1], "> %s"),
                            (high[0], "<= %s"), (high[1], "< %s")):
            if value is not None:
                bounds.append(text % value)
    if issubclass(cls, Unicode):
        max_len = getattr(attrs, "max_len", None)
        if _finite(max_len) is not None:
            bounds.append("at most %s characters" % max_len)
    name = type_name(cls)
    return "%s (%s)" % (name, ", ".join(bounds)) if bounds else name


def _finite(value):
    if value is None:
        return None
    try:
        if math.isinf(value):
            return None
    except TypeError:
        return None
    return int(value) if value == int(value) else value


def quote(value):
    """A client's value, short enough for a message."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE] + "..."


class DescribedValidation:
    """Mixin for spyne's XML protocols (``SafeSoap11``): a value that fails
    validation is a ``Client.ValidationError`` that names the element, the
    type it should have been and what it was."""

    def from_element(self, ctx, cls, element):
        try:
            return super().from_element(ctx, cls, element)
        except SpyneValidationError as exc:
            if isinstance(exc, ValidationError):  # described already, deeper down
                raise
            raise ValidationError("%s: expected %s, got %s" % (
                element.tag.rsplit("}", 1)[-1], expected_type(cls),
                _xml_value(element))) from None


def _xml_value(element):
    children = [child.tag.rsplit("}", 1)[-1] for child in element
                if isinstance(child.tag, str)]
    if children:
        shown = "".join("<%s>" % tag for tag in children[:3])
        return "child elements (%s%s)" % (shown, "..." if len(children) > 3 else "")
    if element.get("{http://www.w3.org/2001/XMLSchema-instance}nil") in ("true", "1"):
        return "nil"
    if not element.text:
        return "an empty element"
    return quote(element.text)

