"""The one table of errors: every faultcode and JSON-RPC code is read from
``tasktypes.errors.CODES`` (SOAP's own refusals included, with -32000 as
their JSON-RPC code), walked along the class hierarchy."""

import pytest
from spyne import Fault
from spyne.error import ValidationError as SpyneValidationError

from tasktypes import errors
from tasktypes.xmlinput import parse_request

# Each error class, constructed as the code that raises it does.
ARGUMENTS = {errors.TaskError: ("m",), errors.ProtocolError: ("m",),
             errors.RequestRefused: ("m",), errors.ValidationError: ("m",)}


def make(cls):
    for base, args in ARGUMENTS.items():
        if issubclass(cls, base):
            return cls(*args)
    raise AssertionError("no way to make %s" % cls)


@pytest.mark.parametrize("cls", list(errors.CODES), ids=lambda c: c.__name__)
def test_every_class_answers_with_its_row(cls):
    fault = make(cls)
    faultcode, code = errors.CODES[cls]
    assert fault.faultcode == faultcode
    assert errors.jsonrpc_code(fault) == code
    assert cls.__doc__ and cls.__doc__.strip()  # the OpenRPC document's message


SOAP_REFUSALS = [cls for cls in errors.CODES if issubclass(cls, errors.RequestRefused)
                 or cls is errors.ValidationError]


@pytest.mark.parametrize("cls", SOAP_REFUSALS, ids=lambda c: c.__name__)
def test_every_soap_refusal_answers_with_its_row(cls):
    fault = make(cls)
    assert errors.is_client_fault(fault)
    assert errors.jsonrpc_code(fault) == errors.OTHER_FAULT_CODE  # as before: any Fault
    assert cls not in errors.jsonrpc_rows()  # neither in OpenRPC nor in the client


def test_a_subclass_answers_as_its_nearest_row():
    class MyNotFound(errors.TaskNotFound):
        pass

    class MyTooDeep(errors.TooDeep):
        pass

    assert MyNotFound("x").faultcode == "Client.TaskNotFound"
    assert errors.jsonrpc_code(MyNotFound("x")) == -32001
    assert MyTooDeep("x").faultcode == "Client.TooDeep"
    assert errors.jsonrpc_code(Fault("Server.Mine", "x")) == errors.OTHER_FAULT_CODE


def test_faultcodes_are_unique_and_qualified():
    faultcodes = [faultcode for faultcode, _ in errors.CODES.values()]
    assert len(set(faultcodes)) == len(faultcodes)
    assert all(f.split(".")[0] in ("Client", "Server") for f in faultcodes)


@pytest.mark.parametrize("body, cls", [
    (b"", errors.EmptyRequest),
    (b"<a>" * 100 + b"</a>" * 100, errors.TooDeep),
    (b'<!DOCTYPE a><a/>', errors.DTDNotAllowed),
    (b"<a><b></a>", errors.XMLSyntaxError),
    (b"<a " + b" ".join(b'x%d="1"' % i for i in range(40)) + b"/>", errors.TooManyAttributes),
    (b"<%s/>" % (b"n" * 2000), errors.NameTooLong),
    ('<?xml version="1.0" encoding="latin-1"?><a/>'.encode(), errors.UnsupportedEncoding),
    (b"<a>\xff</a>", errors.EncodingMismatch),
])
def test_soap_input_refusals_are_classes_of_the_table(body, cls):
    with pytest.raises(cls) as caught:
        parse_request(body, "text/xml")
    assert caught.value.faultcode == errors.CODES[cls][0]
    assert errors.is_client_fault(caught.value)


def test_validation_error_is_spynes_and_keeps_its_message():
    # spyne catches its own ValidationError class; the message is taken as
    # it is, where spyne's class would %-format a client's "%s" away.
    fault = errors.ValidationError("text: expected string, got '50%s'")
    assert isinstance(fault, SpyneValidationError)
    assert fault.faultstring == "text: expected string, got '50%s'"
    assert fault.faultcode == "Client.ValidationError"


def test_client_faults_are_soaps_rule():
    assert errors.is_client_fault(Fault("Client", "x"))
    assert errors.is_client_fault(Fault("Client.Mine", "x"))
    assert not errors.is_client_fault(Fault("ClientMine", "x"))
    assert not errors.is_client_fault(errors.Busy("x"))
