"""Writes the docs site's HTTP reference from the OpenAPI document `jobq api` serves (with the
demo tasks, as `jobq dev` runs): docs/reference/openapi.json as served, and
docs/reference/http.md, one section per operation with its parameters, body and answers.
Run by hack/docs.sh before `mkdocs build`; both files are generated, never edited."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from jobq.api import create_app
from jobq.settings import Settings
from jobq.tasks import load_registry

DEMO_TASKS = ["jobq.demo"]
METHODS = ("get", "post", "put", "patch", "delete")


def document() -> dict[str, Any]:
    settings = Settings(tasks=DEMO_TASKS, api_tokens=["docs"])  # tokens on: the doc says which need one
    doc: dict[str, Any] = create_app(settings, load_registry(DEMO_TASKS)).openapi()
    return doc


def schema_name(schema: dict[str, Any] | None) -> str:
    """A schema as one line: its component's name, or its type."""
    if not schema:
        return ""
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(schema_name(s) for s in schema[key])
    if schema.get("type") == "array":
        return f"array of {schema_name(schema.get('items'))}"
    return f"`{schema.get('type', 'object')}`"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{method.upper()} {path}`", ""]
    if op.get("summary"):
        out += [f"**{op['summary']}**", ""]
    if op.get("description"):
        out += [op["description"].strip(), ""]
    if op.get("security"):
        out += ["Needs the bearer token (`Authorization: Bearer <token>`) when tokens are set.", ""]
    params = op.get("parameters", [])
    if params:
        out += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        out += [f"| `{p['name']}` | {p['in']} | {schema_name(p.get('schema'))} | "
                f"{'yes' if p.get('required') else 'no'} | {cell(p.get('description', ''))} |"
                for p in params]
        out.append("")
    body = op.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        out += [f"Body ({media}): {schema_name(content.get('schema'))}", ""]
    out += ["| status | description | body |", "|---|---|---|"]
    for status, answer in op.get("responses", {}).items():
        content = answer.get("content", {})
        shape = ", ".join(schema_name(c.get("schema")) for c in content.values())
        out.append(f"| {status} | {cell(answer.get('description', ''))} | {shape} |")
    return [*out, ""]


def markdown(doc: dict[str, Any]) -> str:
    info = doc["info"]
    out = ["# HTTP API reference", "",
           f"Generated from the OpenAPI document of `jobq api` {info['version']} with the demo "
           "tasks (`JOBQ_TASKS=jobq.demo`); a deployment's own document, at "
           "`GET /openapi.json` (rendered at `/docs`), names its own task types. The document "
           "itself: [openapi.json](openapi.json).", ""]
    by_tag: dict[str, list[str]] = {}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).extend(operation(path, method, item[method]))
    for tag, lines in by_tag.items():
        out += [f"## {tag}", "", *lines]
    out += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out += [f"### `{name}`", ""]
        if schema.get("description"):
            out += [schema["description"].strip(), ""]
        props = schema.get("properties", {})
        if props:
            required = set(schema.get("required", []))
            out += ["| field | type | required | description |", "|---|---|---|---|"]
            out += [f"| `{field}` | {schema_name(spec)} | {'yes' if field in required else 'no'} "
                    f"| {cell(spec.get('description', ''))} |" for field, spec in props.items()]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(target: Path) -> None:
    doc = document()
    target.mkdir(parents=True, exist_ok=True)
    (target / "openapi.json").write_text(json.dumps(doc, indent=2) + "\n")
    (target / "http.md").write_text(markdown(doc))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/reference"))
