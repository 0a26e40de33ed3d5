"""What a browser gets from the package: ``tasktypes/static/`` under
``/static/``, and the pages built on it.

    app = StaticFiles()                 # serves tasktypes/static/<name>
    app = page("index.html")            # one of them at another path (``/``)

Only the files present in the folder when the application starts are
served, by their exact names: a path with ``..``, a slash or an encoded
character is simply not among them (404), so no request can reach outside the
folder. Each file is read once; replies carry its ``Content-Type``, an
``ETag`` (a ``304`` answers ``If-None-Match``) and ``Cache-Control: no-cache``
(browsers revalidate, so a new release is picked up at once at the cost of a
304). HTML pages get a ``Content-Security-Policy`` that allows only this
origin's scripts and styles: the dashboard keeps an operator token in the
page, and no injected markup may run code or send it elsewhere.
"""

import hashlib
import mimetypes
import os

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_PATH = "/static/"

_TYPES = {".js": "text/javascript; charset=utf-8",
          ".mjs": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8",
          ".svg": "image/svg+xml"}
_PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                "base-uri 'none'; form-action 'self'")


class _File:
    __slots__ = ("body", "headers", "etag")

    def __init__(self, path):
        with open(path, "rb") as f:
            self.body = f.read()
        self.etag = '"%s"' % hashlib.sha256(self.body).hexdigest()[:20]
        extension = os.path.splitext(path)[1]
        content_type = _TYPES.get(extension) or \
            mimetypes.guess_type(path)[0] or "application/octet-stream"
        self.headers = [("Content-Type", content_type), ("ETag", self.etag),
                        ("Cache-Control", "no-cache"),
                        ("X-Content-Type-Options", "nosniff")]
        if extension == ".html":
            self.headers += [("Content-Security-Policy", _PAGE_POLICY),
                             ("Referrer-Policy", "no-referrer")]

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed",
                         "GET or HEAD only\n", [("Allow", "GET, HEAD")])
        if self.etag in environ.get("HTTP_IF_NONE_MATCH", ""):
            start_response("304 Not Modified", [h for h in self.headers
                                                if h[0] != "Content-Type"])
            return []
        start_response("200 OK", self.headers + [("Content-Length", str(len(self.body)))])
        return [] if method == "HEAD" else [self.body]


class StaticFiles:
    """The WSGI application serving ``folder``'s files under ``prefix``."""

    def __init__(self, folder=STATIC_DIR, prefix=STATIC_PATH):
        self.prefix = prefix
        self.files = {name: _File(os.path.join(folder, name))
                      for name in os.listdir(folder)
                      if os.path.isfile(os.path.join(folder, name))}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or ""
        found = self.files.get(path[len(self.prefix):]) if path.startswith(self.prefix) \
            else None
        if found is None:
            return _text(start_response, "404 Not Found", "not found\n")
        return found(environ, start_response)


def page(name, folder=STATIC_DIR):
    """The WSGI application serving the one file ``name`` (a page at ``/``)."""
    return _File(os.path.join(folder, name))


def _text(start_response, status, text, headers=()):
    body = text.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + list(headers))
    return [body]
