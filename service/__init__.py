"""The services that ``wsgi.py`` ships; tests, examples and benchmarks use them."""

from .task_service import InstanceInformation, TaskService

services = [TaskService]

__all__ = ["services", "TaskService", "InstanceInformation"]
