"""The shipped services as a WSGI application, configured from the environment.

Any WSGI server imports ``application`` from here (Apache mod_wsgi: see
``apache/``). ``python wsgi.py [--host H] [--port P] [--request-timeout S]``
serves it with the development server (``tasktypes/devserver.py``); settings
are the ``TASKTYPES_*`` variables of the README's configuration table.
"""

import argparse
import errno
import logging
import os
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


def main():
    from tasktypes.devserver import DEFAULT_REQUEST_TIMEOUT, CannotListen, serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT,
                        metavar="SECONDS",
                        help="longest time a request may take to arrive whole "
                             "(default %(default)g)")
    args = parser.parse_args()
    if not 0 < args.request_timeout < float("inf"):
        parser.error("--request-timeout must be a number of seconds greater than 0")
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(url):
        logger.info("serving on %s (SOAP /soap, WSDL /soap?wsdl, JSON-RPC /jsonrpc), "
                    "pid %d, %s", url, os.getpid(), settings.describe_store())
    try:
        serve(application, args.host, args.port, request_timeout=args.request_timeout,
              ready=ready)
    except CannotListen as exc:
        hint = ("is another server running there? Choose another port with --port."
                if exc.errno == errno.EADDRINUSE else
                "choose another address with --host and --port.")
        sys.exit("tasktypes: %s; %s" % (exc.strerror, hint))


if __name__ == "__main__":
    main()
