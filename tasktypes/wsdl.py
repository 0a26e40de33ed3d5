"""The WSDL that spyne builds, made what strict and wrapper-style consumers
expect. Called once per application by ``SoapApplication``:

    wsdl = tidy_wsdl(spyne_wsdl_bytes)

Two changes, neither of which touches a message on the wire:

- **Imported schemas first.** spyne writes the schema of the target
  namespace first, and it imports the schemas of other namespaces
  (``tasktypes.service`` for a ComplexModel of a service, spyne's own for
  ``WaitSeconds``) that come after it. JAX-WS's ``wsimport`` then warns
  ``Cannot resolve the name 's0:InstanceInformation'``. Schemas are put in
  an order where each comes after the ones it imports.
- **Message parts named ``parameters``.** spyne names the one part of each
  message after the message (``countdown``). The document/literal wrapped
  convention names it ``parameters``, and .NET's ``wsdl.exe`` (and Mono's
  ``wsdl``) unwrap an operation into ``countdown(int steps, double delay)``
  only then; otherwise they generate ``countdown(new countdown {...})``. In
  document/literal the part name never appears in a message, so every client
  sends and reads the same XML as before.
"""

from lxml import etree

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
WRAPPED_PART = "parameters"


def tidy_wsdl(document):
    """``document`` (the WSDL as bytes) with its schemas in import order and
    the single part of each message named ``parameters``; bytes again."""
    root = etree.fromstring(document)
    _order_schemas(root)
    _name_parts(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _order_schemas(root):
    for types in root.iterfind("{%s}types" % WSDL_NS):
        schemas = types.findall("{%s}schema" % XSD_NS)
        by_ns = {s.get("targetNamespace"): s for s in schemas}
        ordered, seen = [], set()

        def visit(schema, path=()):
            ns = schema.get("targetNamespace")
            if ns in seen or ns in path:  # done, or a cycle: keep spyne's order
                return
            for imported in schema.iterfind("{%s}import" % XSD_NS):
                dependency = by_ns.get(imported.get("namespace"))
                if dependency is not None:
                    visit(dependency, path + (ns,))
            seen.add(ns)
            ordered.append(schema)

        for schema in schemas:
            visit(schema)
        for schema in schemas:
            types.remove(schema)
        types.extend(ordered)


def _name_parts(root):
    renamed = {}  # message name -> the part name it had
    for message in root.iterfind("{%s}message" % WSDL_NS):
        parts = message.findall("{%s}part" % WSDL_NS)
        if len(parts) == 1 and parts[0].get("element") is not None:
            renamed[message.get("name")] = parts[0].get("name")
            parts[0].set("name", WRAPPED_PART)
    # parameterOrder (an RPC-style hint) names parts of the input message.
    for operation in root.iterfind("{%s}portType/{%s}operation" % (WSDL_NS, WSDL_NS)):
        order = operation.get("parameterOrder")
        if order is None:
            continue
        names = set()
        for io in ("input", "output"):
            element = operation.find("{%s}%s" % (WSDL_NS, io))
            if element is not None:
                message = element.get("message", "").rpartition(":")[2]
                if message in renamed:
                    names.add(renamed[message])
        operation.set("parameterOrder", " ".join(
            WRAPPED_PART if name in names else name for name in order.split()))
    # A SOAP header in a binding names a message and one of its parts.
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.endswith("}header") \
                and element.get("part") is not None:
            message = element.get("message", "").rpartition(":")[2]
            if renamed.get(message) == element.get("part"):
                element.set("part", WRAPPED_PART)
