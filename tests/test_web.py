"""The static files under /static/ (tasktypes.web), over HTTP from
``python wsgi.py``: types, caching, and nothing outside the folder."""

import http.client

import requests


def raw_get(url, path):
    """GET ``path`` exactly as written (requests would normalise ``..``)."""
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def test_helper_is_served_with_type_and_validator(service_process):
    """Guards GET /static/tasktypes.js: JavaScript type, nosniff, an ETag
    that answers 304, HEAD without a body, no POST."""
    url = service_process().url
    reply = requests.get(url + "/static/tasktypes.js", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Cache-Control"] == "no-cache"
    assert "tasktypes.run" in reply.text
    again = requests.get(url + "/static/tasktypes.js", timeout=10,
                         headers={"If-None-Match": reply.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    head = requests.head(url + "/static/tasktypes.mjs", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) > 0
    assert requests.post(url + "/static/tasktypes.js", timeout=10).status_code == 405


def test_no_path_leaves_the_static_folder(service_process):
    """Guards against directory traversal: only the folder's own files, by
    their exact names, are served."""
    url = service_process().url
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                 "/static/", "/static", "/static/./tasktypes.js",
                 "/static//etc/passwd", "/static/../../wsgi.py", "/static/web.py"):
        assert raw_get(url, path) == 404, path


def test_a_page_with_a_trailing_slash_is_sent_to_its_address(service_process):
    """Guards: "/dashboard/" (say) would load its page with every relative
    link broken; a GET of a mounted path plus a slash is redirected to it."""
    url = service_process().url
    reply = requests.get(url + "/openrpc.json/?x=1", timeout=10, allow_redirects=False)
    assert reply.status_code == 301 and reply.headers["Location"] == "/openrpc.json?x=1"
    assert requests.get(url + "/openrpc.json/", timeout=10).json()["openrpc"]
