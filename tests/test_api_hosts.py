"""JOBQ_API_ALLOWED_HOSTS against DNS rebinding: with auth off, a page of ``evil.example``
whose name resolves to the API is same-origin with it (Origin and Host both name it), so only
the Host allow-list refuses its requests. In-process: the check is ASGI middleware, and the
transport hands it the Host header a browser would send."""

from __future__ import annotations

import httpx
from api_fixtures import ApiFactory, assert_error, welcome

from jobq.api.hosts import host_name

REBOUND = {"Host": "evil.example", "Origin": "http://evil.example",
           "Sec-Fetch-Site": "same-origin"}


async def test_a_dns_rebound_page_is_refused(api: httpx.AsyncClient) -> None:
    """Origin equals Host, so the CSRF check passes it; the default loopback list does not."""
    for method, path in (("POST", "/queues/email-queue/pause"), ("POST", "/jobs"),
                         ("GET", "/queues"), ("GET", "/ui")):
        answer = await api.request(method, path, json=welcome("rebound"), headers=REBOUND)
        assert_error(answer, 400, "host_not_allowed")
    assert (await api.get("/queues")).json()["queues"][0]["paused"] is False
    assert_error(await api.get("/queues", headers={"Host": "localhost.evil.example"}), 400,
                 "host_not_allowed")


async def test_loopback_and_ip_hosts_are_served_by_default(api: httpx.AsyncClient) -> None:
    """`jobq dev`'s names, with or without a port, and any IP address (a kubelet probe or
    Prometheus sends the pod's IP: rebinding needs a name, so an address is never one)."""
    for host in ("localhost", "localhost:8000", "LOCALHOST.", "127.0.0.1:8000", "[::1]:8000",
                 "10.1.2.3:8000", "[fd00::5]"):
        answer = await api.get("/queues", headers={"Host": host})
        assert answer.status_code == 200, (host, answer.text)
    same = {"Host": "localhost:8000", "Origin": "http://localhost:8000"}
    assert (await api.post("/jobs", json=welcome("local"), headers=same)).status_code == 202


async def test_configured_hosts_and_wildcards(api_app: ApiFactory) -> None:
    async with api_app(api_allowed_hosts="jobq.example.com, *.internal.example") as http:
        for host, status in (("jobq.example.com", 200), ("jobq.example.com:443", 200),
                             ("api.internal.example", 200), ("a.b.internal.example", 200),
                             ("internal.example", 400), ("localhost", 400),
                             ("evil.example", 400), ("10.0.0.7:8000", 200)):
            answer = await http.get("/queues", headers={"Host": host})
            assert answer.status_code == status, (host, answer.text)
        # Health stays reachable by address, as probes call it.
        assert (await http.get("/healthz", headers={"Host": "10.0.0.7:8000"})).status_code == 200
    async with api_app(api_allowed_hosts="*") as http:
        assert (await http.get("/queues", headers=REBOUND)).status_code == 200


def test_host_name() -> None:
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("[::1]") == "::1"
    assert host_name("jobq.local.") == "jobq.local"
