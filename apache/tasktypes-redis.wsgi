"""The script apache/tasktypes-redis.conf points mod_wsgi at: the shipped
``wsgi.py`` with the Redis store, logging into Apache's error log.

Settings are set here, in ``os.environ``, BEFORE ``wsgi.py`` is imported: it
reads them once, at import, and mod_wsgi's SetEnv would come too late (it
fills each request's environ). ``setdefault``: a variable already in Apache's
environment wins. Replace @REDIS_URL@ (e.g. redis://127.0.0.1:6379/0).

The web processes only submit (``TASKTYPES_WORKERS=0``): tasks wait in Redis
and run in the worker service, apache/tasktypes-worker.service, so that
nothing Apache does to its processes (a graceful restart, logrotate's nightly
reload, ``maximum-requests``, a touched script) stops or loses a task.
"""

import logging
import os
import sys

os.environ.setdefault("TASKTYPES_STORE", "redis")
os.environ.setdefault("TASKTYPES_REDIS_URL", "@REDIS_URL@")
# os.environ.setdefault("TASKTYPES_PUBLIC_URL", "https://tasktypes.example.com")
# Submit only: no task runs in Apache's processes. Without the worker service
# (apache/tasktypes-worker.service) submitted tasks stay queued; "8" instead
# would run up to 8 tasks per daemon process here, as `python wsgi.py` does,
# and a restart of Apache would then fail them.
os.environ.setdefault("TASKTYPES_WORKERS", "0")
# Each m_wait holds one of the threads= of tasktypes-redis.conf (15) for up to
# TASKTYPES_MAX_WAIT seconds: at most about half of them may wait, further
# m_wait calls get Server.Busy, so other calls always find a thread.
os.environ.setdefault("TASKTYPES_MAX_WAITERS", "7")

# wsgi.py configures logging only under `python wsgi.py`. Here records reach
# stderr, which mod_wsgi writes to Apache's error log (it adds time and pid),
# only through a handler: without this, INFO lines such as a task's own
# logging would be dropped.
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")

from wsgi import application  # noqa: E402,F401  (python-path= has the checkout)
