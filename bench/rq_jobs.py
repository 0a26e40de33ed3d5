"""The job of the RQ side of the queue benchmark: an empty task, as
``countdown(0, 0)`` is one for tasktypes. Imported by RQ's workers from
``bench/.rq-venv`` (``PYTHONPATH=bench``)."""


def empty():
    return 0
