"""The base of the models jobq's API and CLI show: built at their first use, not at import.

A worker imports them with the client and the CLI but uses none of them; building a model's
validator and serializer at import cost a worker about a millisecond each of start-up, which is
the latency of scaling a queue up from zero (``tests/test_imports.py`` keeps them unbuilt)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DeferredModel(BaseModel):
    model_config = ConfigDict(defer_build=True)
