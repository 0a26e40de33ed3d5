"""The ``tasktypes`` command (the console script of setup.py).

    tasktypes run http://127.0.0.1:8000 countdown 10 0.5
    tasktypes methods http://127.0.0.1:8000
    tasktypes worker [MODULE ...] [--grace SECONDS]

This module only defines the subcommands and dispatches: each subcommand
names the module that runs it, imported when that subcommand runs. The client
subcommands (``tasktypes.client_cli``) need the ``client`` extra (requests,
rich); server-side subcommands (``worker``: ``tasktypes.worker``) must run
on a server install without it, so nothing here imports them.
"""

import argparse
import importlib
import sys

#: Exit status of a usage error (argparse's own).
EXIT_USAGE = 2

CLIENT_EXTRA_HINT = 'the client commands need the client extra: pip install "tasktypes[client]"'


def _client_commands(sub):
    """run, methods, status, result, cancel, wait: see tasktypes.client_cli."""
    def command(name, help_text):
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(handler="tasktypes.client_cli:main")
        parser.add_argument("url", metavar="URL",
                            help="the service's base address, e.g. http://127.0.0.1:8000")
        return parser

    def follow_options(parser):
        parser.add_argument("--timeout", type=float, metavar="SECONDS",
                            help="stop following after this long (the task goes on; exit 7)")
        parser.add_argument("--cancel-on-interrupt", action="store_true",
                            help="on Ctrl-C cancel the task at once instead of asking")

    run = command("run", "start a task (or call a method) and follow it to its result")
    run.add_argument("method", metavar="METHOD")
    run.add_argument("args", metavar="ARGS", nargs="*",
                     help="the method's params in declared order (JSON for arrays "
                          "and objects, null for none)")
    follow_options(run)

    methods = command("methods", "list the methods, their params and the task types")
    methods.add_argument("--json", action="store_true",
                         help="print the whole OpenRPC document")

    for name, help_text in [("status", "print where a task stands"),
                            ("result", "print what a finished task returned"),
                            ("cancel", "stop a queued or running task"),
                            ("wait", "follow a running task to its result")]:
        parser = command(name, help_text)
        parser.add_argument("method", metavar="METHOD", help="the task type, e.g. countdown")
        parser.add_argument("task_id", metavar="TASK_ID")
        if name == "wait":
            follow_options(parser)


def _server_commands(sub):
    """worker: see tasktypes.worker, which parses its own arguments."""
    help_text = "run the tasks of a Redis-store deployment on this host"
    worker = sub.add_parser("worker", help=help_text, description=help_text,
                            add_help=False, prefix_chars="\0")
    worker.set_defaults(handler="tasktypes.worker:main", server=True)
    worker.add_argument("argv", nargs=argparse.REMAINDER,
                        help="MODULE ... [--grace SECONDS]; see tasktypes worker --help")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tasktypes", description="Run and watch tasks of a tasktypes service.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _client_commands(sub)
    _server_commands(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    module_name, function = args.handler.split(":")
    server = getattr(args, "server", False)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        if server:
            raise
        print("tasktypes %s: %s (%s)" % (args.command, CLIENT_EXTRA_HINT, e), file=sys.stderr)
        return EXIT_USAGE
    if server:
        return getattr(module, function)(args.argv)
    return getattr(module, function)(args)


if __name__ == "__main__":
    sys.exit(main())
