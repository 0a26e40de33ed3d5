"""The OpenRPC document (``GET /openrpc.json`` and ``rpc.discover``): valid
against the specification's meta-schema, the same from both places, and
true: for every param of every method, of the shipped service and of a
service with bounded, optional, date, array and complex params, the schema
accepts what the server accepts and rejects what it rejects, judged by real
calls over HTTP. A third-party OpenRPC tool (``@open-rpc/schema-utils-js``,
run with Node.js; ``bash .ci/install-openrpc.sh`` installs it) validates and
dereferences the document too."""

import json
import os
import shutil
import subprocess

import jsonschema
import pytest
import referencing
import requests
from referencing.jsonschema import DRAFT7
from spyne import (Array, Boolean, ComplexModel, Date, DateTime, Decimal, Double, Integer,
                   Integer32, Integer64, ServiceBase, Time, Unicode, UnsignedInteger32,
                   rpc)
from spyne.model.primitive.number import PositiveInteger

from tasktypes import ThreadStore, make_application, task_rpc
from tasktypes.devserver import BackgroundServer
from tasktypes.errors import OTHER_FAULT_CODE, jsonrpc_rows

from conftest import ServiceProcess

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.environ.get("OPENRPC_TOOLS", "/opt/tasktypes-openrpc")
ROLES = {"submit", "progress", "result", "cancel", "wait", "log"}


class Point(ComplexModel):
    """A point with a label."""

    __namespace__ = "probe"
    _type_info = [
        ("x", Integer(min_occurs=1, nillable=False)),
        ("y", Double),
        ("label", Unicode(max_len=8)),
        ("tags", Unicode(max_occurs="unbounded")),
    ]


R = dict(min_occurs=1, nillable=False)


class Probe(ServiceBase):
    """One method per kind of param the document must describe."""

    @rpc(Integer(**R), Integer32(**R), Integer64(**R), UnsignedInteger32(**R),
         PositiveInteger(**R), _returns=Integer)
    def ints(ctx, a, b, c, d, e):
        return a

    @rpc(Double(ge=0, le=10, **R), Double(gt=0, lt=1, **R), Integer(ge=1, le=100, **R),
         _returns=Double)
    def bounded(ctx, a, b, c):
        return a

    @rpc(Unicode(min_len=2, max_len=5, **R), Unicode(pattern="[a-z]+", **R),
         Unicode(values=["red", "green"], **R), Boolean(**R), _returns=Unicode)
    def strings(ctx, a, b, c, d):
        return a

    @rpc(Date(**R), DateTime(**R), Time(**R), _returns=DateTime)
    def dates(ctx, a, b, c):
        return b

    @rpc(Decimal(**R), Decimal(ge=0, le=5, **R), _returns=Decimal)
    def decimals(ctx, a, b):
        return a

    @rpc(Array(Integer, **R), Array(Unicode), Point.customize(**R), Point,
         _returns=Array(Point))
    def shapes(ctx, a, b, p, q):
        return [p]

    @rpc(Unicode, Integer, Double(nillable=False), _returns=Unicode)
    def optional(ctx, a, b, c):
        return a

    @task_rpc(Point.customize(**R), Array(Date), _returns=Point)
    def pointTask(ctx, p, days, update_progress):
        return p


# Values every param is tried with, beside those its schema suggests
# (bounds and lengths, and each side of them).
POOL = [
    None, True, False, 0, 1, -1, 7, 2 ** 31 - 1, 2 ** 31, -2 ** 31, -2 ** 31 - 1,
    2 ** 32 - 1, 2 ** 63 - 1, 2 ** 63, -2 ** 63, -2 ** 63 - 1, 0.5, -0.5, 1.0, 10.5,
    1e300, "", "a", "ab", "abcde", "abcdef", "ABC", "3", "red", "blue",
    "2024-02-29", "2024-13-01", "2024-02-29Z", "2024-02-29+02:00", "2024-02-29T10:00:00",
    "2024-02-29 10:00:00", "2024-02-29T10:00:00Z", "2024-02-29T10:00:00.5+02:00",
    "2024-02-29T25:00:00", "2024-02-29T10:60:00", "2024-00-10", "10:00", "10:00:00",
    "23:59:59.5", "24:00:00", "1.5", "-2", "1e3", "NaN", "Infinity", "0x10", " 1", [], [1, 2], [1, "a"], [None], ["a", "b"], {},
    {"x": 1}, {"x": 1, "y": 2.5, "label": "p", "tags": ["a"]}, {"y": 1.0}, {"x": "1"},
    {"x": 1, "tags": "a"}, {"x": 1, "label": "toolonglabel"}, {"x": 1, "unknown": 5},
    {"x": None},
]
ABSENT = object()


def _derived(schema):
    """Values at and beside the bounds and lengths a schema states."""
    found = []
    for sub in [schema] + schema.get("anyOf", []):
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in sub:
                bound = sub[key]
                step = 1 if sub.get("type") == "integer" or \
                    "integer" in (sub.get("type") or []) else 0.001
                found += [bound - step, bound, bound + step]
        for key in ("minLength", "maxLength"):
            if key in sub:
                found += ["x" * n for n in (sub[key] - 1, sub[key], sub[key] + 1) if n >= 0]
    return found


def validator(document, schema):
    """A draft-07 validator of ``schema`` whose ``#/components/...`` refs
    resolve in ``document``; formats are checked."""
    root = {"allOf": [schema], "components": document["components"]}
    return jsonschema.Draft7Validator(root, format_checker=jsonschema.FormatChecker())


def example(document, schema):
    """A non-null value the schema accepts (to fill the other params)."""
    check = validator(document, schema)
    for value in _derived(schema) + POOL[1:]:
        if check.is_valid(value):
            return value
    raise AssertionError("no example value for %r" % schema)


def _known_difference(schema, value):
    """Cases JSON Schema cannot tell as the server does (the README says so):
    1.0 is an integer to JSON Schema, not to the server (JavaScript writes
    it as 1 anyway); bounds apply to numbers only, not to a decimal written
    as a string."""
    types = schema.get("type") or []
    if type(value) is float and value == int(value) and "integer" in types:
        return True
    bounded = any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum",
                                        "exclusiveMaximum"))
    return type(value) is str and bounded and "string" in types


def compare_with_server(url, document):
    """Every method, param and case: (method, param, value, schema says,
    server says) where they disagree. Each method's cases go in one batch."""
    disagreements = []
    for method in document["methods"]:
        params = method["params"]
        examples = {p["name"]: example(document, p["schema"]) for p in params}
        cases = []
        for param in params:
            check = validator(document, param["schema"])
            values = [ABSENT] + _derived(param["schema"]) + POOL
            for value in values:
                call = dict(examples)
                if value is ABSENT:
                    del call[param["name"]]
                    expected = not param["required"]
                elif _known_difference(param["schema"], value):
                    continue
                else:
                    call[param["name"]] = value
                    expected = check.is_valid(value)
                cases.append((param["name"], value, expected, call))
        if not cases:
            continue
        batch = [{"jsonrpc": "2.0", "method": method["name"], "params": call, "id": i}
                 for i, (_, _, _, call) in enumerate(cases)]
        replies = requests.post(url + "/jsonrpc", json=batch, timeout=60).json()
        by_id = {r["id"]: r for r in replies}
        role = method.get("x-tasktypes", {})
        started = [r["result"]["task_id"] for r in replies if "result" in r] \
            if role.get("role") == "submit" else []
        if started:  # stop the tasks that the valid cases started
            requests.post(url + "/jsonrpc", timeout=60, json=[
                {"jsonrpc": "2.0", "method": role["task_type"] + "_cancel",
                 "params": [task_id], "id": task_id} for task_id in started])
        for i, (name, value, expected, _) in enumerate(cases):
            reply = by_id[i]
            accepted = reply.get("error", {}).get("code") != -32602
            if accepted != expected:
                disagreements.append((method["name"], name,
                                      "absent" if value is ABSENT else value,
                                      "schema accepts" if expected else "schema rejects",
                                      reply.get("error", {}).get("message", "accepted")))
    return disagreements


@pytest.fixture(scope="module")
def probe_url():
    application = make_application([Probe], store=ThreadStore())
    with BackgroundServer(application) as url:
        yield url
    application.close()


@pytest.fixture(scope="module")
def shipped():
    """The shipped service, ``python wsgi.py`` as users run it."""
    proc = ServiceProcess()
    yield proc.url
    proc.stop()


def _node_json(package):
    """The JSON a package of the OpenRPC tools exports (schemas shipped as
    JavaScript modules, so node prints them)."""
    node = shutil.which("node")
    module = os.path.join(TOOLS, "node_modules", package)
    assert node and os.path.isdir(module), (
        "the OpenRPC tools are missing: run `bash .ci/install-openrpc.sh` "
        "(Node.js and the npm packages @open-rpc/meta-schema, schema-utils-js, "
        "in %s)" % TOOLS)
    out = subprocess.run(
        [node, "-e", "process.stdout.write(JSON.stringify(require(%s).default))"
         % json.dumps(module)], check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def meta_schema_validator():
    """A validator of the OpenRPC specification's meta-schema (npm
    @open-rpc/meta-schema), with the JSON Schema meta-schema it refers to
    for every schema in a document (@json-schema-tools/meta-schema)."""
    json_schema = _node_json("@json-schema-tools/meta-schema")
    registry = referencing.Registry().with_resources(
        (uri, referencing.Resource.from_contents(json_schema, DRAFT7))
        for uri in ("https://meta.json-schema.tools", "https://meta.json-schema.tools/"))
    return jsonschema.Draft7Validator(_node_json("@open-rpc/meta-schema"),
                                      registry=registry)


def test_document_is_valid_openrpc_and_the_same_from_both_places(shipped):
    """Guards: /openrpc.json validates against the OpenRPC meta-schema, and
    rpc.discover (alone and in a batch) answers the very same document."""
    served = requests.get(shipped + "/openrpc.json", timeout=30)
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("application/json")
    document = served.json()
    meta_schema_validator().validate(document)

    discovered = requests.post(shipped + "/jsonrpc", timeout=30, json={
        "jsonrpc": "2.0", "method": "rpc.discover", "id": 1}).json()
    assert discovered == {"jsonrpc": "2.0", "result": document, "id": 1}
    batch = requests.post(shipped + "/jsonrpc", timeout=30, json=[
        {"jsonrpc": "2.0", "method": "rpc.discover", "params": [], "id": "a"},
        {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": "b"},
        {"jsonrpc": "2.0", "method": "rpc.discover"},  # a notification: no reply
        {"jsonrpc": "2.0", "method": "rpc.discover", "params": [1], "id": "c"}]).json()
    assert [r["id"] for r in batch] == ["a", "b", "c"]
    assert batch[0]["result"] == document and batch[1]["result"] == "x"
    assert batch[2]["error"]["code"] == -32602
    assert requests.post(shipped + "/openrpc.json", timeout=30).status_code == 405
    head = requests.head(shipped + "/openrpc.json", timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert served.headers["Access-Control-Allow-Origin"] == "*"  # browser tools


def test_methods_task_types_and_errors(shipped):
    """Guards: every published method is listed once with its params in
    declared order, task types carry x-tasktypes with their role (plain
    methods none), and the errors come from tasktypes.errors' table."""
    document = requests.get(shipped + "/openrpc.json", timeout=30).json()
    methods = {m["name"]: m for m in document["methods"]}
    assert len(methods) == len(document["methods"]) == 1 + 5 * 6  # m .. m_log
    assert "x-tasktypes" not in methods["echo"]
    assert [p["name"] for p in methods["countdown"]["params"]] == ["steps", "delay"]
    assert [p["required"] for p in methods["countdown"]["params"]] == [True, True]
    assert methods["countdown"]["params"][0]["schema"] == {
        "type": "integer", "minimum": 0, "maximum": 10000}
    assert methods["echo"]["params"][0]["required"] is False
    assert methods["countdown_wait"]["params"][1]["schema"]["minimum"] == 0
    for name in ("countdown", "failingTask", "taskExample", "cloneInstance", "slowTask"):
        assert methods[name]["x-tasktypes"] == {"task_type": name, "role": "submit"}
        for role in ("progress", "result", "cancel", "wait", "log"):
            assert methods["%s_%s" % (name, role)]["x-tasktypes"] == {
                "task_type": name, "role": role}
    for method in document["methods"]:
        assert method["paramStructure"] == "either"
        assert method.get("x-tasktypes", {"role": "submit"})["role"] in ROLES

    info = methods["cloneInstance_result"]["result"]["schema"]
    ref = info["anyOf"][0]["$ref"]
    assert ref == "#/components/schemas/InstanceInformation"
    clone = document["components"]["schemas"]["InstanceInformation"]
    assert clone["properties"]["disk_images"] == {"type": ["array", "null"],
                                                 "items": {"type": "string"}}

    table = document["components"]["errors"]
    for cls, (faultcode, code) in jsonrpc_rows().items():
        assert table[cls.__name__]["code"] == code
        assert table[cls.__name__]["data"] == {"faultcode": faultcode}
    assert table["Fault"]["code"] == OTHER_FAULT_CODE
    assert {table[k]["code"] for k in ("ParseError", "InvalidRequest", "MethodNotFound",
                                       "InvalidParams", "InternalError")} == {
        -32700, -32600, -32601, -32602, -32603}
    refs = {e["$ref"].rsplit("/", 1)[1] for e in methods["countdown_result"]["errors"]}
    assert {"TaskNotFound", "TaskNotFinished", "TaskFailed", "TaskCancelled",
            "TaskTimedOut", "InvalidParams"} <= refs
    assert "TaskNotFound" not in {e["$ref"].rsplit("/", 1)[1]
                                  for e in methods["countdown"]["errors"]}


def test_shipped_schemas_agree_with_the_server(shipped):
    """Guards: for each param of each shipped method, a generated case is
    valid by the schema exactly when the server takes it (no -32602)."""
    document = requests.get(shipped + "/openrpc.json", timeout=30).json()
    assert compare_with_server(shipped, document) == []


def test_probe_schemas_agree_with_the_server(probe_url):
    """Guards the type mapping: integer sizes, bounds, lengths, patterns,
    enums, booleans, dates, arrays, ComplexModels ($ref), optional and
    nullable params, each schema against the server's verdict."""
    document = requests.get(probe_url + "/openrpc.json", timeout=30).json()
    methods = {m["name"]: m for m in document["methods"]}
    ints = [p["schema"] for p in methods["ints"]["params"]]
    assert ints[1] == {"type": "integer", "minimum": -2 ** 31, "maximum": 2 ** 31 - 1}
    assert ints[2]["maximum"] == 2 ** 63 - 1
    point = {"$ref": "#/components/schemas/Point"}
    assert methods["shapes"]["params"][2]["schema"] == {"anyOf": [point, {"type": "null"}]}
    assert methods["pointTask_result"]["result"]["schema"]["anyOf"][0] == point
    assert sorted(document["components"]["schemas"]) == [  # customize() is still Point
        "Point", "TaskInfoResponse", "TaskLogLine", "TaskProgressResponse"]
    assert document["components"]["schemas"]["Point"]["required"] == ["x"]
    assert compare_with_server(probe_url, document) == []


def test_a_third_party_openrpc_tool_validates_and_dereferences_the_document(shipped):
    """Guards: @open-rpc/schema-utils-js (validateOpenRPCDocument,
    parseOpenRPCDocument, MethodCallValidator) accepts the document, finds
    every $ref, and checks calls by its schemas as the server does."""
    _node_json("@open-rpc/meta-schema")  # says how to install the tools if missing
    script = os.path.join(HERE, "openrpc_check.js")
    out = subprocess.run(["node", script, shipped + "/openrpc.json"], capture_output=True,
                         text=True, timeout=120,
                         env=dict(os.environ, NODE_PATH=os.path.join(TOOLS, "node_modules")))
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert report["valid"] is True
    assert report["methods"] == 1 + 5 * 6
    assert report["calls"] == {"countdown [3,0.5]": True, 'countdown ["3",0.5]': False,
                               "countdown_wait [1,-1]": False, "echo [null]": True}


def test_results_match_their_result_schemas(shipped):
    """Guards the result schemas: real replies of a submit, each control,
    a ComplexModel result and a plain method validate against them."""
    document = requests.get(shipped + "/openrpc.json", timeout=30).json()
    methods = {m["name"]: m for m in document["methods"]}

    def call(method, *params):
        reply = requests.post(shipped + "/jsonrpc", timeout=60, json={
            "jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}).json()
        result = reply["result"]
        validator(document, methods[method]["result"]["schema"]).validate(result)
        return result

    task_id = call("cloneInstance", "vm-1", "copy")["task_id"]
    call("cloneInstance_progress", task_id)
    assert call("cloneInstance_wait", task_id, 20)["status"] == "done"
    assert call("cloneInstance_result", task_id)["name"] == "copy"
    call("cloneInstance_cancel", task_id)
    call("echo", "x")
    call("echo", None)
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        validator(document, methods["cloneInstance_result"]["result"]["schema"]).validate(
            {"instance_id": 5})
