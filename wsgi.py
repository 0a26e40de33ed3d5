"""The shipped services as a WSGI application, configured from the environment.

Any WSGI server imports ``application`` from here (Apache mod_wsgi: see
``apache/``). ``python wsgi.py [--host H] [--port P]`` serves it with a
multi-threaded development server; settings are the ``TASKTYPES_*``
variables of the README's configuration table.
"""

import argparse
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
    from tasktypes.devserver import serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.info("serving on http://%s:%d (SOAP /soap, WSDL /soap?wsdl, "
                "JSON-RPC /jsonrpc), pid %d, %s", args.host, args.port, os.getpid(),
                settings.describe_store())
    serve(application, args.host, args.port)


if __name__ == "__main__":
    main()
