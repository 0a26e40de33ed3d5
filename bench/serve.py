"""The shipped ``wsgi.py`` application under the dev server, with its store first
filled with finished tasks: the lookup benchmark's server for the thread
store, whose tasks live in the server process.

    TASKTYPES_STORE=thread python -m bench.serve --port 8000 --fill 100000

The port opens only once the store holds ``--fill`` finished
``countdown(0, 0)`` tasks, submitted through ``Store.submit`` as a request
would, in rounds no larger than the store's queue.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def fill(store, task_type, count, chunk=512):
    """``count`` finished tasks of ``task_type`` in ``store``."""
    done = 0
    while done < count:
        ids = [store.submit(task_type, (0, 0.0)).task_id
               for _ in range(min(chunk, count - done))]
        for task_id in ids:
            store.wait(task_type, task_id, 30)
        done += len(ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fill", type=int, default=0)
    args = parser.parse_args()

    import wsgi
    from service.task_service import TaskService
    from tasktypes.devserver import serve

    application = wsgi.application
    fill(application.store, TaskService.countdown.task_type, args.fill)
    print("filled with %d tasks" % args.fill, flush=True)
    serve(application, args.host, args.port)


if __name__ == "__main__":
    main()
