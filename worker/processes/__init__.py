"""The process executor: handlers run in a pool of child processes of the worker (R26).

A child is started once and runs one job at a time; payloads, results and the calls a handler
makes on its context cross pipes as JSON lines (``protocol``). The parent keeps the job's lease,
writes its progress and side-effect reservations, and stops the child: a soft timeout first
(the handler sees ``SoftTimeout`` or a cancellation), a kill at the hard timeout. A child that
dies fails only its attempt, with the signal or exit code as the reason, and is replaced.
"""

from jobq.worker.processes.pool import ProcessPool

__all__ = ["ProcessPool"]
