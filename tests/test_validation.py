"""Validation faults that say which argument, what type was expected and
what came (tasktypes/validation.py), over SOAP and JSON-RPC, for the shipped
services' bounded arguments."""

import pytest
import requests
from lxml import etree

from service import services
from tasktypes import ThreadStore, make_application
from tasktypes.devserver import BackgroundServer

ENVELOPE = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:t="tasktypes">'
            '<soapenv:Body>%s</soapenv:Body></soapenv:Envelope>')


@pytest.fixture(scope="module")
def url():
    store = ThreadStore()
    with BackgroundServer(make_application(services, store=store)) as base:
        yield base
    store.close()


def soap_fault(url, body):
    """(faultcode, faultstring) of the answer to ``body``."""
    reply = requests.post(url + "/soap", data=(ENVELOPE % body).encode(), timeout=10,
                          headers={"Content-Type": "text/xml; charset=utf-8"})
    assert reply.status_code == 500, reply.text
    fault = etree.fromstring(reply.content).find(".//{*}Fault")
    return fault.findtext("faultcode"), fault.findtext("faultstring")


@pytest.mark.parametrize("body, message", [
    ("<t:countdown><t:steps>20000</t:steps><t:delay>0.1</t:delay></t:countdown>",
     "steps: expected int (0 to 10000), got '20000'"),
    ("<t:countdown><t:steps>3</t:steps><t:delay>11</t:delay></t:countdown>",
     "delay: expected double (0 to 10), got '11'"),
    ("<t:countdown><t:steps xsi:nil='true'/><t:delay>1</t:delay></t:countdown>",
     "steps: expected int (0 to 10000), got nil"),
    ("<t:countdown_progress><t:task_id><t:task_id>5</t:task_id></t:task_id>"
     "</t:countdown_progress>", "task_id: expected long, got child elements (<task_id>)"),
    ("<t:countdown_progress><t:task_id/></t:countdown_progress>",
     "task_id: expected long, got an empty element"),
    ("<t:countdown><t:delay>1</t:delay></t:countdown>",
     "steps: expected int (0 to 10000), got nothing"),
])
def test_soap_validation_fault_names_argument_type_and_value(url, body, message):
    """Guards the message suds users got as 'The value None could not be
    validated.': now it says which argument, which type, what came."""
    assert soap_fault(url, body) == ("soap11env:Client.ValidationError", message)


def test_jsonrpc_invalid_params_names_argument_type_and_value(url):
    reply = requests.post(url + "/jsonrpc", timeout=10, json={
        "jsonrpc": "2.0", "method": "cloneInstance", "params": ["x" * 300, "y"], "id": 1})
    error = reply.json()["error"]
    assert error["code"] == -32602
    assert error["message"].startswith(
        "Invalid params: instance_id: expected string (at most 200 characters), got \"xxx")
