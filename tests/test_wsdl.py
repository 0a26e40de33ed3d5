"""The WSDL as strict and wrapper-style consumers need it (tasktypes/wsdl.py),
checked on the document itself, so that it holds on any machine; the
consumers themselves (wsimport, PHP, node-soap, suds) are in
test_interop.py."""

import pytest
import requests
from lxml import etree

from service import services
from tasktypes import ThreadStore, make_application
from tasktypes.devserver import BackgroundServer
from tasktypes.wsdl import tidy_wsdl

WSDL = "{http://schemas.xmlsoap.org/wsdl/}"
XSD = "{http://www.w3.org/2001/XMLSchema}"


@pytest.fixture(scope="module")
def wsdl():
    store = ThreadStore()
    with BackgroundServer(make_application(services, store=store)) as url:
        yield etree.fromstring(requests.get(url + "/soap?wsdl", timeout=10).content)
    store.close()


def test_schemas_come_after_the_schemas_they_import(wsdl):
    """Guards wsimport's 'Cannot resolve the name s0:...' warnings."""
    defined = set()
    for schema in wsdl.iter(XSD + "schema"):
        for imported in schema.iterfind(XSD + "import"):
            assert imported.get("namespace") in defined, etree.tostring(imported)
        defined.add(schema.get("targetNamespace"))
    assert {"tasktypes", "tasktypes.service"} <= defined


def test_every_message_part_is_named_parameters(wsdl):
    """Guards natural signatures in .NET/Mono wsdl and JAX-WS (wrapped style)."""
    parts = list(wsdl.iter(WSDL + "part"))
    assert parts and {p.get("name") for p in parts} == {"parameters"}
    for operation in wsdl.iterfind("%sportType/%soperation" % (WSDL, WSDL)):
        assert operation.get("parameterOrder") in (None, "parameters")


def test_arguments_are_sized_and_bounded(wsdl):
    """Guards the shipped services' declarations: xs:int, not xs:integer."""
    text = etree.tostring(wsdl).decode()
    assert 'type="xs:integer"' not in text and 'base="xs:integer"' not in text
    countdown = wsdl.find('.//%scomplexType[@name="countdown"]' % XSD)
    steps = countdown.find('.//%selement[@name="steps"]' % XSD)
    assert steps.get("minOccurs") in (None, "1") and steps.get("nillable") in (None, "false")


def test_tidy_survives_a_cycle_and_a_foreign_import():
    """A schema cycle ends the walk instead of looping, an import of a schema
    that is not in the document is no dependency, and no schema is lost."""
    doc = (b'<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" '
           b'xmlns:xs="http://www.w3.org/2001/XMLSchema"><wsdl:types>'
           b'<xs:schema targetNamespace="a"><xs:import namespace="b"/>'
           b'<xs:import namespace="http://elsewhere"/></xs:schema>'
           b'<xs:schema targetNamespace="b"><xs:import namespace="a"/></xs:schema>'
           b'</wsdl:types></wsdl:definitions>')
    out = etree.fromstring(tidy_wsdl(doc))
    assert [s.get("targetNamespace") for s in out.iter(XSD + "schema")] == ["b", "a"]
