"""Any WSGI application behind tasktypes' dev server, in a process of any
virtual environment: the benchmark serves Ladon's service and a do-nothing
application with the same server code, settings and thread count as
``python wsgi.py`` serves tasktypes.

    python bench/httpd.py --app noop --port 8001
    bench/.ladon-venv/bin/python bench/httpd.py --app ladon --port 8002

Ladon's virtual environment has waitress but not spyne, so the tasktypes
package (whose ``__init__`` imports spyne) is not imported: ``devserver``,
``defaults`` and ``poll_loop``, which import only waitress and each other,
are loaded from the source tree as the modules of an empty ``tasktypes``
package.
"""

import argparse
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def devserver():
    """``tasktypes.devserver`` without the rest of tasktypes."""
    package = types.ModuleType("tasktypes")
    package.__path__ = [os.path.join(ROOT, "tasktypes")]
    sys.modules["tasktypes"] = package
    from tasktypes import devserver as module
    return module


def noop_app(environ, start_response):
    """The floor: what the server alone costs per request."""
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


class Closable:
    """The dev server closes the application it served (a tasktypes
    application closes its store); these applications have nothing to close."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        return self.application(environ, start_response)

    def close(self):
        pass


def ladon_app():
    sys.path.insert(0, HERE)
    import ladon_service
    return ladon_service.application()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=("noop", "ladon"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    server = devserver()
    application = noop_app if args.app == "noop" else ladon_app()
    print("serving %s on http://%s:%d" % (args.app, args.host, args.port), flush=True)
    server.serve(Closable(application), args.host, args.port)


if __name__ == "__main__":
    main()
