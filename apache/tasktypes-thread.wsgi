"""The script apache/tasktypes-thread.conf points mod_wsgi at: the shipped
``wsgi.py`` with the thread store, logging into Apache's error log.

Settings are set here, in ``os.environ``, BEFORE ``wsgi.py`` is imported: it
reads them once, at import, and mod_wsgi's SetEnv would come too late (it
fills each request's environ). ``setdefault``: a variable already in Apache's
environment wins.
"""

import logging
import os
import sys

os.environ.setdefault("TASKTYPES_STORE", "thread")
# os.environ.setdefault("TASKTYPES_PUBLIC_URL", "https://tasktypes.example.com")
# os.environ.setdefault("TASKTYPES_WORKERS", "8")
# Each m_wait holds one of the threads= of tasktypes-thread.conf (25) for up to
# TASKTYPES_MAX_WAIT seconds: at most about half of them may wait, further
# m_wait calls get Server.Busy, so other calls always find a thread.
os.environ.setdefault("TASKTYPES_MAX_WAITERS", "12")

# wsgi.py configures logging only under `python wsgi.py`. Here records reach
# stderr, which mod_wsgi writes to Apache's error log (it adds time and pid),
# only through a handler: without this, INFO lines such as a task's own
# logging would be dropped.
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")

from wsgi import application  # noqa: E402,F401  (python-path= has the checkout)
