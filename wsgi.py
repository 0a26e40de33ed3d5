"""The shipped services as a WSGI application, configured from the environment.

Any WSGI server imports ``application`` from here (Apache mod_wsgi: see
``apache/``). ``python wsgi.py [--host H] [--port P]`` serves it with a
multi-threaded development server; settings are the ``TASKTYPES_*``
variables of the README's configuration table.
"""

import argparse
import logging
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tasktypes import make_application  # noqa: E402
from tasktypes.config import ConfigError, Settings  # noqa: E402
from service import services  # noqa: E402

logger = logging.getLogger("tasktypes.wsgi")

try:
    settings = Settings.from_environ()
except ConfigError as exc:
    if __name__ == "__main__":
        sys.exit("tasktypes: bad setting: %s" % exc)
    raise

application = make_application(services, store=settings.make_store(),
                               **settings.application_options())


def _exit_on_sigterm(signum, frame):
    raise SystemExit(0)  # cheroot's safe_start stops the server on SystemExit


def main():
    from tasktypes.devserver import make_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = make_server(application, args.host, args.port)
    # SIGTERM (kill, systemd, the tests) stops like Ctrl-C: tasks are closed
    # and reported, not left for the heartbeat to time out.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logger.info("serving on http://%s:%d (SOAP /soap, WSDL /soap?wsdl, "
                "JSON-RPC /jsonrpc), %s store", args.host, args.port, settings.store)
    try:
        server.safe_start()
    finally:
        application.close()


if __name__ == "__main__":
    main()
