"""The shipped service, written the way we want users to write theirs: plain
spyne methods, and ``@task_rpc`` where the work takes long.

Also as we want users to write theirs: arguments are sized types (``Integer32``
is ``xs:int``, which .NET and Java map to ``int``; spyne's ``Integer`` is the
unbounded ``xs:integer``, a string or a ``BigInteger`` there), required ones
say so (``min_occurs=1, nillable=False``: a missing one is a client fault at
submit, not a task that fails later), numbers and strings are bounded, and
every long method has a time limit.
"""

import logging
import time

from spyne import ComplexModel, Double, Integer32, ServiceBase, Unicode, rpc

from tasktypes import task_rpc

logger = logging.getLogger(__name__)


def required(cls, **bounds):
    """``cls`` as a required argument: present, not nil, within ``bounds``
    (spyne's ``ge``, ``le``, ``max_len`` ...)."""
    return cls.customize(min_occurs=1, nillable=False, **bounds)


NAME = required(Unicode, max_len=200)  # ids, names and messages


class InstanceInformation(ComplexModel):
    """A virtual machine as ``cloneInstance`` reports it."""

    __namespace__ = "tasktypes.service"
    _type_info = [
        ("instance_id", Unicode),
        ("name", Unicode),
        ("state", Unicode),
        # a flat list of strings; Array(Unicode) would add a wrapper element
        ("disk_images", Unicode(max_occurs="unbounded")),
    ]


class TaskService(ServiceBase):
    @rpc(Unicode, _returns=Unicode)
    def echo(ctx, text):
        """Returns ``text``: the plain call tasks are measured against."""
        return text

    # Bounded arguments and a time limit: no caller parks a worker for ever;
    # at most 4 at once: long countdowns cannot take every worker from the
    # other methods (8 per process by default).
    @task_rpc(required(Integer32, ge=0, le=10000), required(Double, ge=0, le=10),
              _returns=required(Integer32), _time_limit=3600, _max_running=4)
    def countdown(ctx, steps, delay, update_progress):
        """``steps`` steps of ``delay`` seconds, reporting progress after each."""
        for i in range(steps):
            time.sleep(delay)
            update_progress((i + 1) / steps, "%d / %d" % (i + 1, steps))
        return steps

    @task_rpc(NAME, required(Double, ge=0, le=10), _returns=required(Integer32), _time_limit=60)
    def failingTask(ctx, message, delay, update_progress):
        """Waits ``delay`` seconds, then fails with ``ValueError(message)``."""
        time.sleep(delay)
        raise ValueError(message)

    @task_rpc(NAME, required(Integer32), _returns=required(Integer32), _time_limit=120)
    def taskExample(ctx, session_id, counter, **kw):
        """Ladon's example task, with Ladon's ``**kw`` style: 60 steps of 0.5 s."""
        logger.info("taskExample %s started for session %s", ctx.task_id, session_id)
        for i in range(60):
            time.sleep(0.5)
            kw["update_progress"]((i + 1) / 60.0, "step %d of 60" % (i + 1))
            if (i + 1) % 10 == 0:  # a few lines for the task's log (m_log)
                logger.info("taskExample %s: %d of 60 steps done", ctx.task_id, i + 1)
        return counter

    @task_rpc(NAME, NAME, _returns=required(InstanceInformation), _time_limit=60)
    def cloneInstance(ctx, instance_id, new_instance_name, update_progress):
        """A simulated clone of a virtual machine, in stages."""
        stages = ["snapshot", "copy disks", "register", "boot"]
        for i, stage in enumerate(stages):
            logger.info("cloneInstance %s: %s", ctx.task_id, stage)
            time.sleep(0.2)
            update_progress((i + 1) / len(stages), stage)
        return InstanceInformation(
            instance_id="%s-clone" % instance_id, name=new_instance_name,
            state="running",
            disk_images=["%s-disk%d.qcow2" % (new_instance_name, n) for n in (0, 1)])

    @task_rpc(required(Double, ge=0, le=60), _returns=required(Integer32),
              _time_limit=3, _max_running=2)
    def slowTask(ctx, seconds, update_progress):
        """Sleeps ``seconds`` in steps of 0.1 s; at most two run at once, and
        none for longer than 3 s."""
        steps = max(1, int(round(seconds * 10)))
        for i in range(steps):
            time.sleep(seconds / steps)
            update_progress((i + 1) / steps)
        return int(seconds)
