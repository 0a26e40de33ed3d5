"""The development server under many pollers at once."""

import http.client
import json
import threading
import time

from service import services
from tasktypes import ThreadStore, make_application
from tasktypes.devserver import BackgroundServer


def test_forty_keep_alive_pollers_see_no_connection_resets():
    # cheroot, the dev server before waitress, closed idle keep-alive
    # connections beyond 10; a poller that sent its next request just then
    # got a reset. Any server here must keep 40 pollers' connections.
    store = ThreadStore()
    body = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["x"],
                       "id": 1}).encode()
    errors, calls = [], []
    with BackgroundServer(make_application(services, store=store)) as url:
        port = int(url.rsplit(":", 1)[1])

        def poll():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            done = 0
            stop = time.monotonic() + 1.5
            while time.monotonic() < stop:
                try:
                    conn.request("POST", "/jsonrpc", body,
                                 {"Content-Type": "application/json"})
                    assert json.loads(conn.getresponse().read())["result"] == "x"
                    done += 1
                except OSError as exc:
                    errors.append(repr(exc))
                    conn.close()
            calls.append(done)
            conn.close()

        threads = [threading.Thread(target=poll) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    store.close()
    assert errors == []
    assert len(calls) == 40 and all(calls)
