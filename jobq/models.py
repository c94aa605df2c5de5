"""The base of the models jobq's API and CLI show: built at their first use, not at import.

A worker imports them with the client and the CLI but builds none of them at start: building
all of them at import cost a worker about 4 ms of its start-up, which is the latency of scaling a
queue up from zero (``tests/test_imports.py`` keeps them unbuilt). The price is paid at a
model's first use instead, once per process (``JobPublic`` with its nested models: about 1 ms)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DeferredModel(BaseModel):
    model_config = ConfigDict(defer_build=True)
