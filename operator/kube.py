"""The operator's own Kubernetes API calls (beyond kopf's watching), with the official client.

The client is synchronous, so each call runs in a thread. Objects come back as plain JSON dicts
(camelCase, as the API sends them), which is also what ``kopf.info`` takes. Every patch is a JSON
merge patch: ``None`` removes a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from jobq.errors import ConfigError

T = TypeVar("T")

SCHEDULES = ("jobq.io", "v1", "jobschedules")
PEERINGS = ("kopf.dev", "v1", "kopfpeerings")  # watched through kopf, never read here
CLUSTER_PEERINGS = ("kopf.dev", "v1", "clusterkopfpeerings")
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT_S = 15.0  # per request: a hung API server must not stall a reconcile loop forever


def load_configuration() -> k8s.Configuration:
    """In-cluster credentials when running in a pod, else $KUBECONFIG / ~/.kube/config."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        try:
            k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (k8s_config.ConfigException, OSError) as exc:
            raise ConfigError(
                f"no Kubernetes credentials (not in a pod, and no usable KUBECONFIG): {exc}"
            ) from None
    return configuration


def as_body(obj: Mapping[str, Any]) -> kopf.Body:
    """A plain API object as the body ``kopf.info``/``kopf.warn`` post Events about."""
    return kopf.Body(cast(Any, obj))


class Kube:
    """The few calls the operator makes itself."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        self.apps = k8s.AppsV1Api(api)
        self.core = k8s.CoreV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)

    @classmethod
    def from_environment(cls) -> Kube:
        return cls(k8s.ApiClient(load_configuration()))

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, _request_timeout=TIMEOUT_S, **kwargs)

    def _plain(self, obj: Any) -> dict[str, Any]:
        plain: dict[str, Any] = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return plain

    async def _get_or_none(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        try:
            return self._plain(await self._call(fn, *args))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # --- Deployments and their pods ---

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = await self._get_or_none(self.apps.read_namespaced_deployment, name, namespace)
        if found is not None:  # the typed model drops these; kopf.info needs them
            found.setdefault("apiVersion", "apps/v1")
            found.setdefault("kind", "Deployment")
        return found

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        await self._call(
            self.apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
        )

    async def annotate_deployment(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        await self._call(
            self.apps.patch_namespaced_deployment,
            name,
            namespace,
            {"metadata": {"annotations": dict(annotations)}},
            _content_type=MERGE_PATCH,
        )

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        found = await self._call(self.core.list_namespaced_pod, namespace, label_selector=selector)
        items: list[dict[str, Any]] = self._plain(found).get("items") or []
        return items

    async def annotate_pod(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        await self._call(
            self.core.patch_namespaced_pod,
            name,
            namespace,
            {"metadata": {"annotations": dict(annotations)}},
            _content_type=MERGE_PATCH,
        )

    # --- JobSchedules ---

    async def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_or_none(
            self.custom.get_namespaced_custom_object,
            *SCHEDULES[:2],
            namespace,
            SCHEDULES[2],
            name,
        )

    async def patch_schedule_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        await self._call(
            self.custom.patch_namespaced_custom_object_status,
            *SCHEDULES[:2],
            namespace,
            SCHEDULES[2],
            name,
            {"status": dict(status)},
            _content_type=MERGE_PATCH,
        )
