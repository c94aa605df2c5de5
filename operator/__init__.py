"""jobq's Kubernetes operator (kopf): fires JobSchedules and autoscales worker Deployments.

``jobq operator --namespace NS`` runs it; ``run_operator`` is the entry point.
"""

from __future__ import annotations

import sys

if __name__ == "operator":
    # This folder is the jobq.operator package, but with the repository root on sys.path (any
    # ``python -m ...`` run from there, e.g. the Dockerfile's compileall) it is found first as
    # the standard library's ``operator``, which collections, functools and the rest import.
    # Become that module instead of breaking the interpreter.
    import importlib.machinery
    import os

    _path = os.path.join(os.path.dirname(os.__file__), "operator.py")
    _loader = importlib.machinery.SourceFileLoader("operator", _path)
    _stdlib = type(sys)("operator")
    _stdlib.__file__ = _path
    _stdlib.__loader__ = _loader
    _stdlib.__spec__ = importlib.machinery.ModuleSpec("operator", _loader, origin=_path)
    sys.modules["operator"] = _stdlib
    _loader.exec_module(_stdlib)
else:
    from jobq.operator.main import OperatorOptions, run_operator

    __all__ = ["OperatorOptions", "run_operator"]
