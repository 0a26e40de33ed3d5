"""Settings from the environment, read once when ``wsgi.py`` is imported (and
by the worker service, ``tasktypes worker``), so that the development
server, mod_wsgi, any other WSGI server and the worker service configure
the service the same way.

    settings = Settings.from_environ()     # raises ConfigError naming the variable
    store = settings.make_store()

The variables and their defaults are the contract's table (CONTRACT.md,
"Configuration").
"""

import math
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import defaults


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    store: str = defaults.STORE
    redis_url: str = defaults.REDIS_URL
    result_ttl: float = defaults.RESULT_TTL
    max_body: int = defaults.MAX_BODY
    workers: int = defaults.WORKERS
    public_url: str = None
    max_wait: float = defaults.MAX_WAIT
    admin_token: str = None
    max_result: int = defaults.MAX_RESULT
    max_batch: int = defaults.MAX_BATCH
    max_waiters: int = defaults.MAX_WAITERS
    worker_grace: float = defaults.WORKER_GRACE
    services: tuple = (defaults.SERVICES,)

    @classmethod
    def from_environ(cls, environ=None):
        env = os.environ if environ is None else environ
        d = cls()

        def get(name, parse, default, secret=False):
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                return parse(raw.strip())
            except ValueError as exc:
                shown = "(%d characters, not shown)" % len(raw) if secret else repr(raw)
                raise ConfigError("%s=%s: %s" % (name, shown, exc)) from None

        return cls(
            store=get("TASKTYPES_STORE", _choice("thread", "redis"), d.store),
            redis_url=get("TASKTYPES_REDIS_URL", _redis_url, d.redis_url),
            result_ttl=get("TASKTYPES_RESULT_TTL", _positive(float), d.result_ttl),
            max_body=get("TASKTYPES_MAX_BODY", _positive(int), d.max_body),
            workers=get("TASKTYPES_WORKERS", _at_least_zero(int), d.workers),
            public_url=get("TASKTYPES_PUBLIC_URL", _http_url, d.public_url),
            max_wait=get("TASKTYPES_MAX_WAIT", _positive(float), d.max_wait),
            admin_token=get("TASKTYPES_ADMIN_TOKEN", _token, d.admin_token, secret=True),
            max_result=get("TASKTYPES_MAX_RESULT", _positive(int), d.max_result),
            max_batch=get("TASKTYPES_MAX_BATCH", _positive(int), d.max_batch),
            max_waiters=get("TASKTYPES_MAX_WAITERS", _positive(int), d.max_waiters),
            worker_grace=get("TASKTYPES_WORKER_GRACE", _at_least_zero(float),
                             d.worker_grace),
            services=get("TASKTYPES_SERVICES", _module_names, d.services),
        )._checked()

    def _checked(self):
        if self.workers == 0 and self.store != "redis":
            raise ConfigError("TASKTYPES_WORKERS=0: only a Redis-store web process may "
                              "run no tasks itself (submit-only: a worker service "
                              "runs them); the thread store needs at least 1")
        return self

    def make_store(self, serve=True):
        """The configured store; ``serve=False`` (Redis store only) leaves
        its threads and workers for ``store.serve()``."""
        if self.store == "redis":
            from .redis_store import RedisStore
            return RedisStore(self.redis_url, workers=self.workers, max_result=self.max_result,
                              result_ttl=self.result_ttl, serve=serve)
        from .store import ThreadStore
        return ThreadStore(workers=self.workers, result_ttl=self.result_ttl,
                           max_result=self.max_result)

    def describe_store(self):
        """The store in a log line: "thread store", or "redis store at <URL>"
        with any password left out."""
        if self.store != "redis":
            return "thread store"
        return "redis store at " + self.shown_redis_url()

    def shown_redis_url(self):
        """``redis_url`` as a log may show it: any password left out."""
        parts = urlsplit(self.redis_url)
        if parts.password is not None:
            netloc = "***@" + parts.netloc.rpartition("@")[2]
            return parts._replace(netloc=netloc).geturl()
        return self.redis_url

    def application_options(self):
        """Keyword arguments of ``make_application`` that come from here."""
        return {"public_url": self.public_url, "max_body": self.max_body,
                "max_wait": self.max_wait, "admin_token": self.admin_token,
                "max_batch": self.max_batch, "max_waiters": self.max_waiters}


def _choice(*allowed):
    def parse(raw):
        if raw not in allowed:
            raise ValueError("must be one of %s" % ", ".join(allowed))
        return raw
    return parse


#: Upper bound of the number settings: Redis cannot expire keys much later.
MAX_SETTING = 10 ** 9


def _positive(kind):
    def parse(raw):
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError("must be a positive %s" % ("integer" if kind is int
                                                        else "number")) from None
        if not (value > 0 and math.isfinite(value)):
            raise ValueError("must be greater than 0")
        if value > MAX_SETTING:
            raise ValueError("must be at most %d" % MAX_SETTING)
        return value
    return parse


def _at_least_zero(kind):
    positive = _positive(kind)

    def parse(raw):
        try:
            if kind(raw) == 0:
                return kind(0)
        except ValueError:
            pass
        try:
            return positive(raw)
        except ValueError as exc:
            raise ValueError(str(exc).replace("a positive", "0 or a positive")
                             .replace("greater than 0", "0 or more")) from None
    return parse


def _module_names(raw):
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names or not all(all(part.isidentifier() for part in name.split("."))
                            for name in names):
        raise ValueError("must be module names separated by commas")
    return names


def _redis_url(raw):
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    import redis
    try:  # redis-py's own reading of the URL: port, db, options
        redis.ConnectionPool.from_url(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    return raw


def _token(raw):
    """The operator token: long enough not to be guessed, and safe in an
    HTTP header."""
    if not 16 <= len(raw) <= 512:
        raise ValueError("must be 16 to 512 characters long")
    if not all("!" <= c <= "~" for c in raw):
        raise ValueError("must be printable ASCII without spaces")
    return raw


def _http_url(raw):
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return raw
