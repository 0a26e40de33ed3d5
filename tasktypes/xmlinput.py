"""A SOAP request's bytes -> a parsed tree, or a client fault: every check
that keeps what one request costs in proportion to its size, done before
spyne walks the tree.

    root, ids = parse_request(body, "text/xml; charset=utf-8")

- **Encodings.** SOAP 1.1 messages are UTF-8 or UTF-16 (the XML
  specification's two required encodings); anything else declared, in the
  Content-Type's ``charset`` or the XML declaration, is refused, and the
  bytes must be what is declared: the family seen in the bytes (a BOM, or
  the NUL pattern of ``<?`` in UTF-16) must match every declaration, and the
  body must decode strictly. UTF-7 and friends never reach a parser.
- **No DTD.** SOAP forbids a document type declaration. It is looked for in
  the DECODED text, so no encoding trick hides one, and the parser never
  loads, resolves or expands anything (no entity is ever expanded: no XXE,
  no billion laughs).
- **Structure.** At most ``MAX_ELEMENTS`` elements and
  ``MAX_TOTAL_ATTRIBUTES`` attributes (first bounded cheaply, before the
  parser builds anything, by counting ``<``, and ``=`` before a quote
  (attributes and namespace declarations alike), in the text, so that
  what a request makes the parser allocate is bounded too),
  ``MAX_ATTRIBUTES`` attributes per element,
  ``MAX_DEPTH`` levels and ``MAX_NAME`` characters per name. Attributes are
  counted with ``element.keys()``: spyne reads them with
  ``element.attrib.items()``, which is quadratic in lxml (100,000 attributes
  held the GIL for 54 s), so an element with too many never gets there.
"""

import codecs
import re

from lxml import etree

from . import errors
from .defaults import (MAX_XML_ATTRIBUTES as MAX_ATTRIBUTES, MAX_XML_DEPTH as MAX_DEPTH,
                       MAX_XML_ELEMENTS as MAX_ELEMENTS, MAX_XML_NAME as MAX_NAME,
                       MAX_XML_TOTAL_ATTRIBUTES as MAX_TOTAL_ATTRIBUTES)



_FAMILY = {"utf-8": "utf-8", "utf-16": "utf-16", "utf-16-le": "utf-16",
           "utf-16-be": "utf-16"}
_XML_DECL = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']{1,40})["']""")
# An attribute or namespace declaration: "=", any blanks, a quote.
_ATTRIBUTE = re.compile(r"""=\s*["']""")
_CHARSET = re.compile(r"""charset\s*=\s*"?([^";\s]{1,40})""", re.I)


def _parser():
    # A new one per request: an lxml parser must not serve two threads at
    # once, and one kept per thread keeps the buffers of its largest parse.
    return etree.XMLParser(encoding="utf-8", resolve_entities=False, no_network=True,
                           load_dtd=False, dtd_validation=False, huge_tree=False)


def _family(name, where):
    """The family ("utf-8" or "utf-16") of a declared encoding, or a fault."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        codec = None
    family = _FAMILY.get(codec)
    if family is None:
        raise errors.UnsupportedEncoding("%s declares the encoding %r: SOAP messages "
                                         "are UTF-8 or UTF-16" % (where, name[:40]))
    return family


def decode(body, content_type):
    """The body as text, after checking its encoding (see the module docstring)."""
    if body.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise errors.UnsupportedEncoding("the body is UTF-32: SOAP messages are UTF-8 "
                                         "or UTF-16")
    if body.startswith(codecs.BOM_UTF8):
        seen, codec = "utf-8", "utf-8-sig"
    elif body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        seen, codec = "utf-16", "utf-16"
    elif body.startswith(b"<\x00"):
        seen, codec = "utf-16", "utf-16-le"
    elif body.startswith(b"\x00<"):
        seen, codec = "utf-16", "utf-16-be"
    else:
        seen, codec = "utf-8", "utf-8"
    found = _CHARSET.search(content_type or "")
    if found and _family(found.group(1), "the Content-Type") != seen:
        raise errors.EncodingMismatch("the Content-Type says %s but the body is %s"
                                      % (found.group(1)[:40], seen.upper()))
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise errors.EncodingMismatch("the body is not valid %s (byte %d)"
                                      % (seen.upper(), exc.start))
    declared = _XML_DECL.match(text[:200])
    if declared and _family(declared.group(1), "the XML declaration") != seen:
        raise errors.EncodingMismatch("the XML declaration says %s but the body is %s"
                                      % (declared.group(1), seen.upper()))
    return text.lstrip("\ufeff")


def parse_request(body, content_type, plain=False):
    """(root element, {id: element}) of a SOAP request, or a client fault.

    ``plain=True`` is for a caller that takes nothing but a few known
    elements without attributes (``tasktypes.direct_soap``) and leaves every
    other document to this function's full checks: the root only (ids
    ``{}``), without the id lookup and the structure walk, which such a
    document passes by its shape (the checks before parsing still bound
    what the parser builds)."""
    if not body.strip():
        raise errors.EmptyRequest("the request body is empty")
    text = decode(body, content_type)
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise errors.DTDNotAllowed("a SOAP message must not contain a DTD")
    if text.count("<") > 2 * MAX_ELEMENTS + 16:
        raise errors.TooManyElements("more than %d elements" % MAX_ELEMENTS)
    for count, _ in enumerate(_ATTRIBUTE.finditer(text), 1):
        if count > MAX_TOTAL_ATTRIBUTES:
            raise errors.TooManyAttributes("more than %d attributes" % MAX_TOTAL_ATTRIBUTES)
    try:
        if plain:
            root, ids = etree.fromstring(text.encode("utf-8"), _parser()), {}
        else:
            root, ids = etree.XMLID(text.encode("utf-8"), _parser())
    except etree.XMLSyntaxError as exc:
        raise errors.XMLSyntaxError(str(exc)[:200])
    if root.getroottree().docinfo.doctype:
        raise errors.DTDNotAllowed("a SOAP message must not contain a DTD")
    if not plain:
        check_structure(root)
    return root, ids


def check_structure(root):
    """Counts elements, attributes, depth and name lengths in one pass."""
    depth = {None: 0}
    count = 0
    for element in root.iter(etree.Element):
        count += 1
        if count > MAX_ELEMENTS:
            raise errors.TooManyElements("more than %d elements" % MAX_ELEMENTS)
        level = depth[element.getparent()] + 1
        if level > MAX_DEPTH:
            raise errors.TooDeep("elements nested more than %d deep" % MAX_DEPTH)
        if len(element):
            depth[element] = level
        if len(element.tag) > MAX_NAME:
            raise errors.NameTooLong("an element name of %d characters" % len(element.tag))
        names = element.keys()
        if len(names) > MAX_ATTRIBUTES:
            raise errors.TooManyAttributes("an element with %d attributes (at most %d)"
                                           % (len(names), MAX_ATTRIBUTES))
        for name in names:
            if len(name) > MAX_NAME:
                raise errors.NameTooLong("an attribute name of %d characters" % len(name))
