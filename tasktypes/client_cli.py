"""The client subcommands of ``tasktypes``: run, methods, status, result,
cancel, wait (``tasktypes.cli`` defines their arguments).

    $ tasktypes run http://127.0.0.1:8000 countdown 10 0.5
    countdown task 4503599627370497 started
      countdown ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 100% 0:00:05 done 10 / 10
    10

Arguments are read by the method's declared types, from the service's OpenRPC
document (``rpc.discover``): integers, numbers, booleans (true/false), strings
as they are, JSON for arrays and objects, ``null`` for none. Progress goes to
stderr (a live bar on a terminal, one plain line per change otherwise), the
result to stdout as JSON.

Exit status: 0 done; 1 the task failed; 2 a usage error (unknown method,
wrong arguments); 3 the task was cancelled; 4 it ran past its time limit; 5
the server answered with another error (unknown task id, busy, store
unavailable...); 6 the server could not be reached or did not answer
JSON-RPC; 7 the task had not finished (``--timeout``, or ``result`` too
early); 130 interrupted with Ctrl-C, the task left running; 141 the output
pipe was closed (``| head``).
"""

import difflib
import json
import math
import os
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

from .client import (BadResponse, ClientError, MethodNotFound, RpcError, ServerUnreachable,
                     TaskCancelled, TaskClient, TaskFailed, TaskNotFinished, TaskTimedOut,
                     WaitTimeout)

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_TIMED_OUT = 4
EXIT_SERVER_ERROR = 5
EXIT_UNREACHABLE = 6
EXIT_NOT_FINISHED = 7
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command killed by it

_EXIT_CODES = [(TaskFailed, EXIT_TASK_FAILED), (TaskCancelled, EXIT_CANCELLED),
               (TaskTimedOut, EXIT_TIMED_OUT), (TaskNotFinished, EXIT_NOT_FINISHED),
               (WaitTimeout, EXIT_NOT_FINISHED), (ServerUnreachable, EXIT_UNREACHABLE),
               (BadResponse, EXIT_UNREACHABLE), (RpcError, EXIT_SERVER_ERROR)]


class UsageError(Exception):
    """A mistake in the command line; the message says how to fix it."""


def main(args):
    """Run one client subcommand; its exit status."""
    client = TaskClient(args.url)
    try:
        return COMMANDS[args.command](client, args)
    except UsageError as e:
        _error(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:  # before a task was started, or while cancelling
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `tasktypes methods URL | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ClientError as e:
        _error(str(e))
        return next((code for cls, code in _EXIT_CODES if isinstance(e, cls)),
                    EXIT_SERVER_ERROR)
    finally:
        client.close()


def _error(text):
    print("tasktypes: error: %s" % text, file=sys.stderr)


def _print_json(value):
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- the catalog of methods (from rpc.discover) ----------------------------

class Catalog:
    """The methods of a service, from its OpenRPC document."""

    def __init__(self, document, url):
        self.document = document
        self.url = url
        self.methods = {m["name"]: m for m in document.get("methods", [])}

    @classmethod
    def of(cls, client):
        try:
            return cls(client.discover(), client.url)
        except MethodNotFound:
            raise BadResponse("%s does not answer rpc.discover: not a tasktypes service, "
                              "or one older than its OpenRPC document" % client.url) from None

    def method(self, name):
        found = self.methods.get(name)
        if found is None:
            close = difflib.get_close_matches(name, self.methods, n=4, cutoff=0.6)
            hint = "; did you mean %s?" % ", ".join(close) if close else ""
            raise UsageError("no method %r at %s%s (`tasktypes methods URL` lists them)"
                             % (name, self.url, hint))
        return found

    def task_type(self, name):
        method = self.method(name)
        role = method.get("x-tasktypes", {})
        if role.get("role") != "submit":
            types = [n for n, m in self.methods.items()
                     if m.get("x-tasktypes", {}).get("role") == "submit"]
            raise UsageError("%s is not a task type; the task types are: %s"
                             % (name, ", ".join(types) or "none"))
        return method

    def controls(self, task_type):
        return [n for n, m in self.methods.items()
                if m.get("x-tasktypes", {}).get("task_type") == task_type
                and m["x-tasktypes"].get("role") != "submit"]

    def resolve(self, schema):
        """A schema without its null alternative and $ref."""
        if "anyOf" in schema:
            options = [s for s in schema["anyOf"] if s.get("type") != "null"]
            if len(options) == 1:
                schema = options[0]
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            return dict(self.document["components"]["schemas"].get(name, {}), title=name)
        return schema

    def type_name(self, schema):
        schema = self.resolve(schema)
        kinds = schema.get("type")
        if isinstance(kinds, list):
            kinds = [k for k in kinds if k != "null"]
            kinds = kinds[0] if len(kinds) == 1 else kinds
        if "title" in schema:
            return schema["title"]
        if kinds == "array":
            return "array of %s" % self.type_name(schema.get("items") or {})
        if "enum" in schema:
            return "|".join(json.dumps(v) for v in schema["enum"] if v is not None)
        if isinstance(kinds, str):
            return kinds
        return "any"

    def signature(self, method):
        params = ", ".join("%s%s: %s" % (p["name"], "" if p.get("required") else "?",
                                          self.type_name(p["schema"]))
                           for p in method["params"])
        return "%s(%s)" % (method["name"], params)


def convert(catalog, param, text):
    """One command-line argument as the param's declared type."""
    schema = param["schema"]
    kinds = schema.get("type")
    nullable = (isinstance(kinds, list) and "null" in kinds) or any(
        s.get("type") == "null" for s in schema.get("anyOf", []))
    if text == "null" and nullable:
        return None
    resolved = catalog.resolve(schema)
    kind = resolved.get("type")
    if isinstance(kind, list):
        kind = [k for k in kind if k != "null"]
        kind = kind[0] if len(kind) == 1 else "json"
    name = param["name"]
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise UsageError("%s: %r is not an integer (write it like 10)" % (name, text))
    if kind == "number":
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise UsageError("%s: %r is not a number (write it like 0.5)" % (name, text))
        return value
    if kind == "boolean":
        value = {"true": True, "false": False}.get(text.lower())
        if value is None:
            raise UsageError("%s: %r is not a boolean (write true or false)" % (name, text))
        return value
    if kind == "string":
        return text
    try:
        return json.loads(text)
    except ValueError:
        example = '["a", "b"]' if kind == "array" else '{"name": "value"}'
        raise UsageError("%s (%s): %r is not JSON (write it like '%s')"
                         % (name, catalog.type_name(schema), text, example))


def convert_all(catalog, method, texts):
    params = method["params"]
    required = [i for i, p in enumerate(params) if p.get("required")]
    least = required[-1] + 1 if required else 0
    if not least <= len(texts) <= len(params):
        wanted = str(len(params)) if least == len(params) else \
            "%d to %d" % (least, len(params))
        raise UsageError("%s takes %s argument%s, %d given: %s" % (
            method["name"], wanted, "" if wanted == "1" else "s", len(texts),
            catalog.signature(method)))
    return [convert(catalog, p, t) for p, t in zip(params, texts)]


def _task_id(text):
    try:
        return int(text)
    except ValueError:
        raise UsageError("TASK_ID: %r is not a task id (an integer, as `run` printed it)"
                         % text)


# -- following a task ------------------------------------------------------

class LiveDisplay:
    """A progress bar on a terminal: message, duration and status."""

    def __init__(self, task):
        self.bar = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[duration]}"),
            # markup=False: a task's message is text, never rich markup ("[/tmp]")
            TextColumn("{task.fields[status]}", markup=False),
            TextColumn("{task.fields[message]}", markup=False),
            console=Console(stderr=True), transient=False)
        self.id = self.bar.add_task(task.method, total=1.0, status="", message="",
                                    duration="")
        self.bar.start()

    def update(self, progress):
        self.bar.update(self.id, completed=progress.progress, status=progress.status,
                        message=progress.message[:80], duration=_duration(progress.duration))

    def stop(self):
        self.bar.stop()


class PlainDisplay:
    """One line on stderr per change, for logs and pipes."""

    def __init__(self, task):
        self.task = task
        self.last = None

    def update(self, progress):
        seen = (progress.status, round(progress.progress * 100), progress.message)
        if seen != self.last:
            self.last = seen
            parts = [progress.status, "%d%%" % seen[1], _duration(progress.duration)]
            if progress.message:
                parts.append(progress.message[:200])
            print("%s %s: %s" % (self.task.method, self.task.task_id, " ".join(parts)),
                  file=sys.stderr, flush=True)

    def stop(self):
        pass


def _duration(seconds):
    seconds = int(seconds or 0)
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def follow(task, args):
    """Follow ``task`` with a display until it ends, then print its result."""
    display = (LiveDisplay if sys.stderr.isatty() else PlainDisplay)(task)
    try:
        final = task.wait(timeout=args.timeout, on_progress=display.update)
    except KeyboardInterrupt:
        display.stop()
        return _interrupted(task, args)
    except WaitTimeout as e:
        display.stop()
        _error("%s; it goes on: %s" % (e, _follow_hint(task, args)))
        return EXIT_NOT_FINISHED
    finally:
        display.stop()
    if final.status == "done":
        _print_json(task.result())
        return EXIT_OK
    try:
        task.result()  # raises the task's error: TaskFailed, TaskCancelled...
    except (TaskFailed, TaskCancelled, TaskTimedOut) as e:
        raise type(e)("%s task %s %s: %s" % (task.method, task.task_id, final.status,
                                             e.message), e.code, e.data) from None
    return EXIT_SERVER_ERROR


def _interrupted(task, args):
    cancel = args.cancel_on_interrupt
    if not cancel and sys.stdin.isatty():
        try:
            # the question on stderr: stdout is for the result (JSON)
            print("Cancel %s task %s? [y/N] " % (task.method, task.task_id), end="",
                  file=sys.stderr, flush=True)
            answer = input()
        except (KeyboardInterrupt, EOFError):
            answer = ""
            print(file=sys.stderr)
        cancel = answer.strip().lower() in ("y", "yes")
    if cancel:
        progress = task.cancel()
        print("%s task %s %s" % (task.method, task.task_id, progress.status),
              file=sys.stderr)
        return EXIT_CANCELLED if progress.status == "cancelled" else EXIT_INTERRUPTED
    print("%s task %s goes on; %s" % (task.method, task.task_id, _follow_hint(task, args)),
          file=sys.stderr)
    return EXIT_INTERRUPTED


def _follow_hint(task, args):
    return "follow it with: tasktypes wait %s %s %s" % (args.url, task.method, task.task_id)


# -- the subcommands --------------------------------------------------------

def cmd_run(client, args):
    catalog = Catalog.of(client)
    method = catalog.method(args.method)
    values = convert_all(catalog, method, args.args)
    if method.get("x-tasktypes", {}).get("role") != "submit":
        _print_json(client.call(method["name"], *values))
        return EXIT_OK
    task = client.start(method["name"], *values)
    print("%s task %s started" % (task.method, task.task_id), file=sys.stderr, flush=True)
    return follow(task, args)


def cmd_methods(client, args):
    catalog = Catalog.of(client)
    if args.json:
        _print_json(catalog.document)
        return EXIT_OK
    print("Methods at %s (task types marked *):" % client.url)
    for name, method in catalog.methods.items():
        role = method.get("x-tasktypes")
        if role and role.get("role") != "submit":
            continue
        result = method.get("result", {}).get("schema", {})
        if role:
            for control in catalog.controls(name):
                if catalog.methods[control]["x-tasktypes"].get("role") == "result":
                    result = catalog.methods[control].get("result", {}).get("schema", {})
        print("%s %s -> %s" % ("*" if role else " ", catalog.signature(method),
                               catalog.type_name(result)))
        if method.get("summary"):
            print("      %s" % method["summary"])
        if role:
            print("      controls: %s" % ", ".join(catalog.controls(name)))
    return EXIT_OK


def _existing_task(client, args):
    Catalog.of(client).task_type(args.method)
    return client.task(args.method, _task_id(args.task_id))


def cmd_status(client, args):
    _print_json(_existing_task(client, args).progress().raw)
    return EXIT_OK


def cmd_result(client, args):
    _print_json(_existing_task(client, args).result())
    return EXIT_OK


def cmd_cancel(client, args):
    _print_json(_existing_task(client, args).cancel().raw)
    return EXIT_OK


def cmd_wait(client, args):
    return follow(_existing_task(client, args), args)


COMMANDS = {"run": cmd_run, "methods": cmd_methods, "status": cmd_status,
            "result": cmd_result, "cancel": cmd_cancel, "wait": cmd_wait}

