"""Typed results: a handle on a job created by a typed task, whose ``result()`` waits for the
job's end on the long poll (``jobq.watch``) and gives the result validated by its type."""

from jobq.results.handle import JobHandle, SyncJobHandle
from jobq.results.types import encode_result, result_adapter

__all__ = ["JobHandle", "SyncJobHandle", "encode_result", "result_adapter"]
