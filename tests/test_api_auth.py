"""Bearer tokens (JOBQ_API_TOKENS): every route but health needs one, /metrics included. In-process:
the check is ASGI middleware, and the transport hands it the headers as a server would."""

from __future__ import annotations

from api_fixtures import ApiFactory, assert_error, welcome


async def test_bearer_tokens(api_app: ApiFactory) -> None:
    async with api_app(api_tokens="s3cret-one, s3cret-two") as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-one"},
                        {"Authorization": "Basic s3cret-one"}, {"Authorization": "Bearer"},
                        {"Authorization": "Bearer s3cret-one-and-more"}):
            denied = await http.post("/jobs", json=welcome("auth"), headers=headers)
            assert_error(denied, 401, "unauthorized")
            assert denied.headers["www-authenticate"].startswith("Bearer")
        for path in ("/queues", "/dlq", "/jobs/abc", "/openapi.json", "/no/such/route"):
            assert_error(await http.get(path), 401, "unauthorized")

        one = {"Authorization": "Bearer s3cret-one"}
        created = await http.post("/jobs", json=welcome("auth"), headers=one)
        assert created.status_code == 202, created.text
        two = {"Authorization": "bearer s3cret-two"}
        again = await http.post("/jobs", json=welcome("auth"), headers=two)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        job_id = created.json()["jobId"]
        status = await http.get(f"/jobs/{job_id}/status", headers=one)
        assert status.json()["state"] == "waiting"
        assert (await http.get("/queues", headers=one)).status_code == 200

        for path in ("/healthz", "/readyz"):
            assert (await http.get(path)).status_code == 200, path
        # /metrics names every queue and task type and reads Redis: the token, like the API.
        assert_error(await http.get("/metrics"), 401, "unauthorized")
        assert "jobq_queue_jobs" in (await http.get("/metrics", headers=two)).text

        doc = (await http.get("/openapi.json", headers=one)).json()
        assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        assert doc["paths"]["/jobs"]["post"]["security"] == [{"bearerAuth": []}]
        assert "security" not in doc["paths"]["/healthz"]["get"]
        assert doc["paths"]["/metrics"]["get"]["security"] == [{"bearerAuth": []}]
        metrics = (await http.get("/metrics", headers=one)).text
        assert 'jobq_api_requests_total{method="POST",route="/jobs",status="401"} 6.0' in metrics
        assert 'jobq_api_requests_total{method="GET",route="/metrics",status="401"} 1.0' in metrics
        assert 'route="/jobs/{job_id}/status",status="200"} 1.0' in metrics
