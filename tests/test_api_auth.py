"""Bearer tokens (JOBQ_API_TOKENS): every route but health and metrics needs one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from test_api_support import ApiServer, assert_error, start_api, welcome

__all__ = ["start_api"]  # fixture used below


def test_bearer_tokens(start_api: Callable[..., ApiServer]) -> None:
    server = start_api(JOBQ_API_TOKENS="s3cret-one, s3cret-two")
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-one"},
                        {"Authorization": "Basic s3cret-one"}, {"Authorization": "Bearer"},
                        {"Authorization": "Bearer s3cret-one-and-more"}):
            denied = http.post("/jobs", json=welcome("auth"), headers=headers)
            assert_error(denied, 401, "unauthorized")
            assert denied.headers["www-authenticate"].startswith("Bearer")
        for path in ("/queues", "/dlq", "/jobs/abc", "/openapi.json", "/no/such/route"):
            assert_error(http.get(path), 401, "unauthorized")

        one = {"Authorization": "Bearer s3cret-one"}
        created = http.post("/jobs", json=welcome("auth"), headers=one)
        assert created.status_code == 202, created.text
        two = {"Authorization": "bearer s3cret-two"}
        again = http.post("/jobs", json=welcome("auth"), headers=two)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        job_id = created.json()["jobId"]
        assert http.get(f"/jobs/{job_id}/status", headers=one).json()["state"] == "waiting"
        assert http.get("/queues", headers=one).status_code == 200

        for path in ("/healthz", "/readyz", "/metrics"):
            assert http.get(path).status_code == 200, path

        doc = http.get("/openapi.json", headers=one).json()
        assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        assert doc["paths"]["/jobs"]["post"]["security"] == [{"bearerAuth": []}]
        assert "security" not in doc["paths"]["/healthz"]["get"]
        metrics = http.get("/metrics").text
        assert 'jobq_api_requests_total{method="POST",route="/jobs",status="401"} 6.0' in metrics
