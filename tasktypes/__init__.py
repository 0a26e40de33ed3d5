"""tasktypes: long-running spyne methods as task types.

    from spyne import ServiceBase, rpc, Unicode, Integer
    from tasktypes import task_rpc

    class Reports(ServiceBase):
        @task_rpc(Integer, _returns=Unicode)
        def report(ctx, year, update_progress):
            update_progress(0.5, "half way")
            return "done"

publishes ``report`` (returns a task id at once), ``report_progress``,
``report_result``, ``report_cancel`` and ``report_wait``.
"""

from . import compat  # noqa: F401  (first: fixes spyne on 3.12+ before anything imports it)
from .app import make_application
from .decorator import task_rpc
from .model import TaskInfoResponse, TaskProgressResponse, TaskStatus
from .store import Store, ThreadStore

__all__ = ["task_rpc", "make_application", "Store", "ThreadStore", "TaskStatus",
           "TaskInfoResponse", "TaskProgressResponse"]
