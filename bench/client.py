"""The benchmark's HTTP client: requests built once as bytes, sent over raw
keep-alive sockets, answers read by their Content-Length and parsed only
when asked.

    client = Client("http://127.0.0.1:8000", "jsonrpc")
    task_id = task_id_of(client.call("countdown", 0, 0.0))
    request = client.request("countdown_progress", task_id)   # bytes, once
    client.send(request)                    # the raw answer body, for loops

A poll costs this client a few tens of microseconds of CPU, well under what
any server here spends on it (zeep, requests or even ``http.client`` would
cost more than the servers); the benchmark reports the client's CPU beside
the server's, so that a reader can see it did not saturate first.

Protocols: ``soap`` and ``jsonrpc`` (tasktypes, ``/soap`` and ``/jsonrpc``),
``ladon`` (Ladon's JSON-RPC 1.0, ``/LadonTaskService/jsonrpc10``),
``ladon-soap`` (Ladon's SOAP 1.1, rpc/encoded, ``/LadonTaskService/soap11``:
its envelopes are built from the service's WSDL, read once), and ``noop``
(any request answers "ok": the do-nothing application).
"""

import json
import re
import socket
import time
import xml.etree.ElementTree as ElementTree
from urllib.parse import urlsplit

#: The argument names of the shipped methods, for SOAP's named parts.
ARG_NAMES = {
    "echo": ("text",),
    "countdown": ("steps", "delay"),
    "countdown_progress": ("task_id",),
    "countdown_result": ("task_id",),
    "countdown_wait": ("task_id", "timeout"),
}

PATHS = {"soap": "/soap", "jsonrpc": "/jsonrpc", "ladon": "/LadonTaskService/jsonrpc10",
         "ladon-soap": "/LadonTaskService/soap11", "noop": "/"}
PROTOCOLS = tuple(PATHS)
LADON_WSDL = "/LadonTaskService/soap11/description"

_SOAP = ('<?xml version="1.0" encoding="utf-8"?>'
         '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
         'xmlns:tns="tasktypes"><soapenv:Body><tns:%s>%s</tns:%s></soapenv:Body>'
         '</soapenv:Envelope>')
_ENCODED = ('<?xml version="1.0" encoding="utf-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:ns1="%s">'
            '<soapenv:Body soapenv:encodingStyle='
            '"http://schemas.xmlsoap.org/soap/encoding/"><ns1:%s>%s</ns1:%s>'
            '</soapenv:Body></soapenv:Envelope>')
_SOAP_FIELD = re.compile(rb"<(?:\w+:)?(task_id|task-id|progress|status|message|faultcode|"
                         rb"faultstring|\w+Result|result)(?:\s[^>]*)?>([^<]*)(?=<)")
_WSDL = "{http://schemas.xmlsoap.org/wsdl/}"
_WSDL_SOAP = "{http://schemas.xmlsoap.org/wsdl/soap/}"
_XSD_TYPES = {"xsd:long": "xsd:long", "xsd:decimal": "xsd:decimal",
              "xsd:string": "xsd:string"}


class CallError(Exception):
    """The server answered with a fault / JSON-RPC error; ``code`` is the
    SOAP faultcode or the JSON-RPC error code."""

    def __init__(self, code, text=""):
        super().__init__("%s: %s" % (code, text))
        self.code = code


class Client:
    """One keep-alive connection to one endpoint."""

    def __init__(self, base_url, protocol, timeout=60):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.protocol = protocol
        self.path = PATHS[protocol]
        self.timeout = timeout
        self.sock = None
        self.buffer = b""
        self.ladon_operations = (ladon_operations(self.get(LADON_WSDL))
                                 if protocol == "ladon-soap" else None)

    # -- requests -------------------------------------------------------------

    def body(self, method, *args):
        """The request body of ``method(*args)``, as bytes."""
        if self.protocol == "soap":
            parts = "".join("<tns:%s>%s</tns:%s>" % (name, _xml_value(value), name)
                            for name, value in zip(ARG_NAMES[method], args))
            return (_SOAP % (method, parts, method)).encode("utf-8")
        if self.protocol == "jsonrpc":
            return json.dumps({"jsonrpc": "2.0", "method": method, "params": list(args),
                               "id": 1}).encode("utf-8")
        if self.protocol == "ladon":
            return json.dumps({"method": method, "params": list(args),
                               "id": 1}).encode("utf-8")
        if self.protocol == "ladon-soap":
            namespace, _, parts = self.ladon_operations[method]
            xml = "".join('<%s xsi:type="%s">%s</%s>' % (name, kind, _xml_value(value), name)
                          for (name, kind), value in zip(parts, args))
            return (_ENCODED % (namespace, method, xml, method)).encode("utf-8")
        return b""

    def request(self, method, *args):
        """The whole HTTP request of ``method(*args)``, as bytes: built once,
        sent as often as a loop likes."""
        body = self.body(method, *args)
        headers = ["POST %s HTTP/1.1" % self.path, "Host: %s:%d" % (self.host, self.port),
                   "Content-Length: %d" % len(body)]
        if self.protocol in ("soap", "ladon-soap"):
            action = '""' if self.protocol == "soap" else \
                '"%s"' % self.ladon_operations[method][1]
            headers += ["Content-Type: text/xml; charset=utf-8", "SOAPAction: " + action]
        else:
            headers.append("Content-Type: application/json")
        return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body

    # -- the connection ----------------------------------------------------------

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, request):
        """Send ``request`` (bytes from ``request()``); the answer's body.
        Reconnects once if the server closed an idle keep-alive connection."""
        for attempt in (0, 1):
            if self.sock is None:
                self.connect()
            try:
                self.sock.sendall(request)
                return self._read_response()
            except (ConnectionError, EOFError):
                self.close()
                if attempt:
                    raise

    def _read_response(self):
        data = self.buffer
        recv = self.sock.recv
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            data += chunk
        head = data[:end].lower()
        start = head.find(b"content-length:")
        if start < 0:
            raise RuntimeError("an answer without Content-Length: %r" % data[:200])
        line_end = head.find(b"\r\n", start)
        length = int(head[start + 15:line_end if line_end >= 0 else len(head)])
        total = end + 4 + length
        while len(data) < total:
            chunk = recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            data += chunk
        self.buffer = data[total:]
        if b"connection: close" in head:
            self.close()
        if not data.startswith((b"HTTP/1.1 200", b"HTTP/1.1 500", b"HTTP/1.0 200")):
            raise CallError("HTTP", data[:end].split(b"\r\n", 1)[0].decode("latin-1"))
        return data[end + 4:total]

    def get(self, path):
        """GET ``path`` (a WSDL, say) on a connection of its own."""
        sock, self.sock, buffer = self.sock, None, self.buffer
        try:
            self.connect()
            self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close"
                               "\r\n\r\n" % (path, self.host, self.port)).encode("ascii"))
            return self._read_response()
        finally:
            self.close()
            self.sock, self.buffer = sock, buffer

    # -- answers ------------------------------------------------------------------

    def call(self, method, *args):
        """``method(*args)``: the result (a dict for complex types); raises
        ``CallError`` for a fault."""
        return self.parse(self.send(self.request(method, *args)))

    def parse(self, data):
        if self.protocol == "noop":
            if data != b"ok":
                raise CallError("noop", data[:100])
            return data
        if self.protocol in ("soap", "ladon-soap"):
            fields = dict((k.decode().replace("-", "_"), v.decode())
                          for k, v in _SOAP_FIELD.findall(data))
            if "faultcode" in fields or b"Fault>" in data:
                fields.setdefault("faultcode", "fault")
                raise CallError(fields["faultcode"].partition(":")[2] or fields["faultcode"],
                                fields.get("faultstring", ""))
            results = [v for k, v in fields.items()
                       if (k.endswith("Result") or k == "result") and v]
            if results:
                return results[0]
            return {k: v for k, v in fields.items() if not k.endswith("Result")}
        doc = json.loads(data)
        error = doc.get("error")
        if error:
            raise CallError(error.get("code"), error.get("message") or error.get("string"))
        return doc["result"]


def ladon_operations(wsdl):
    """{operation: (namespace, SOAPAction, [(part, xsi type)])} from a Ladon
    rpc/encoded WSDL."""
    root = ElementTree.fromstring(wsdl)
    messages = {m.get("name"): [(p.get("name"), _XSD_TYPES.get(p.get("type"), "xsd:string"))
                                for p in m.findall(_WSDL + "part")]
                for m in root.findall(_WSDL + "message")}
    operations = {}
    for operation in root.iter(_WSDL + "operation"):
        soap_operation = operation.find(_WSDL_SOAP + "operation")
        body = operation.find("%sinput/%sbody" % (_WSDL, _WSDL_SOAP))
        if soap_operation is not None and body is not None:
            name = operation.get("name")
            operations[name] = (body.get("namespace"), soap_operation.get("soapAction"),
                                messages[name])
    return operations


def _xml_value(value):
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("&", "&amp;").replace("<", "&lt;")


def task_id_of(answer):
    """The task id in a submission's answer, as the protocol writes it."""
    value = answer["task_id"]
    return value if isinstance(value, str) and not value.isdigit() else int(value)


def finished_task(client, timeout=30):
    """The id of a ``countdown`` that has finished: its polls' answers no
    longer change. Ladon's is ``countdown(1, 0)`` (it takes a falsy result
    for none), done once its progress is 1."""
    ladon = client.protocol.startswith("ladon")
    task_id = task_id_of(client.call("countdown", 1 if ladon else 0, 0.0))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.call("countdown_progress", task_id)
        if (float(answer["progress"]) >= 1.0) if ladon else (answer["status"] == "done"):
            return task_id
        time.sleep(0.002)
    raise RuntimeError("countdown did not finish in %g s" % timeout)
