"""Raw HTTP clients for the timing loops: one keep-alive ``http.client``
connection, request bodies built once, answers parsed just enough.

    client = Client("http://127.0.0.1:8000", "jsonrpc")
    task_id = client.call("countdown", 0, 0.0)["task_id"]
    body = client.body("countdown_progress", task_id)
    client.send(body)                     # the raw answer, for timing loops

zeep and requests would add more client time per call than the server spends.

Protocols: ``soap`` (SOAP 1.1 at ``/soap``), ``jsonrpc`` (JSON-RPC 2.0 at
``/jsonrpc``) and ``ladon`` (Ladon's JSON-RPC 1.0 at
``/LadonTaskService/jsonrpc10``, positional params).
"""

import http.client
import json
import re
from urllib.parse import urlsplit

#: The argument names of the shipped methods, for SOAP's named parts.
ARG_NAMES = {
    "echo": ("text",),
    "countdown": ("steps", "delay"),
    "countdown_progress": ("task_id",),
    "countdown_result": ("task_id",),
    "countdown_wait": ("task_id", "timeout"),
}

PATHS = {"soap": "/soap", "jsonrpc": "/jsonrpc", "ladon": "/LadonTaskService/jsonrpc10"}

_SOAP = ('<?xml version="1.0" encoding="utf-8"?>'
         '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
         'xmlns:tns="tasktypes"><soapenv:Body><tns:%s>%s</tns:%s></soapenv:Body>'
         '</soapenv:Envelope>')
_SOAP_FIELD = re.compile(rb"<(?:\w+:)?(task_id|progress|status|message|faultcode|"
                         rb"faultstring|\w+Result)>([^<]*)(?=<)")


class CallError(Exception):
    """The server answered with a fault / JSON-RPC error; ``code`` is the
    SOAP faultcode or the JSON-RPC error code."""

    def __init__(self, code, text=""):
        super().__init__("%s: %s" % (code, text))
        self.code = code


class Client:
    def __init__(self, base_url, protocol, timeout=60):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.protocol = protocol
        self.path = PATHS[protocol]
        self.timeout = timeout
        self.headers = {"Content-Type": ("text/xml; charset=utf-8" if protocol == "soap"
                                         else "application/json")}
        if protocol == "soap":
            self.headers["SOAPAction"] = '""'
        self.conn = None

    def connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.connect()

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def body(self, method, *args):
        """The request body of ``method(*args)``, as bytes."""
        if self.protocol == "soap":
            parts = "".join("<tns:%s>%s</tns:%s>" % (name, _xml_value(value), name)
                            for name, value in zip(ARG_NAMES[method], args))
            return (_SOAP % (method, parts, method)).encode("utf-8")
        if self.protocol == "jsonrpc":
            return json.dumps({"jsonrpc": "2.0", "method": method, "params": list(args),
                               "id": 1}).encode("utf-8")
        return json.dumps({"method": method, "params": list(args), "id": 1}).encode("utf-8")

    def send(self, body):
        """POST ``body``; the raw answer. Reconnects once if the server closed
        an idle keep-alive connection."""
        for attempt in (0, 1):
            if self.conn is None:
                self.connect()
            try:
                self.conn.request("POST", self.path, body, self.headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return data
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, http.client.CannotSendRequest):
                self.close()
                if attempt:
                    raise

    def call(self, method, *args):
        """``method(*args)``: the result (a dict for complex types); raises
        ``CallError`` for a fault."""
        return self.parse(self.send(self.body(method, *args)))

    def parse(self, data):
        if self.protocol == "soap":
            fields = dict((k.decode(), v.decode()) for k, v in _SOAP_FIELD.findall(data))
            if "faultcode" in fields:
                raise CallError(fields["faultcode"].partition(":")[2],
                                fields.get("faultstring", ""))
            results = [v for k, v in fields.items() if k.endswith("Result") and v]
            if results:
                return results[0]
            return {k: v for k, v in fields.items() if not k.endswith("Result")}
        doc = json.loads(data)
        error = doc.get("error")
        if error:
            raise CallError(error.get("code"), error.get("message") or error.get("string"))
        return doc["result"]


def _xml_value(value):
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("&", "&amp;").replace("<", "&lt;")


def task_id_of(answer):
    """The task id in a submission's answer, as the protocol writes it."""
    value = answer["task_id"]
    return value if isinstance(value, str) and not value.isdigit() else int(value)


def status_of(answer):
    return answer.get("status")
