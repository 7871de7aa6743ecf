"""The service's `/docs`: one self-contained HTML page rendered from its own OpenAPI schema.

FastAPI's Swagger UI loads its JavaScript and CSS from a CDN, so it is a blank page where the
platform runs offline; no installed package ships those assets. This page needs no network
at all (no script, no external stylesheet, image or font): every endpoint with its description,
its request fields (type, bounds, whether optional, meaning), the example body, a `curl` line
and its answer's fields. It is rendered from `app.openapi()`, so it cannot drift from what the
service validates, and `/openapi.json` stays the machine-readable contract.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1f2328; }
h2 { border-top: 1px solid #d0d7de; padding-top: 1rem; margin-top: 2rem; }
.method { font-family: monospace; background: #0969da; color: white; padding: 0.1rem 0.4rem; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
pre { background: #f6f8fa; padding: 0.75rem; overflow-x: auto; border-radius: 6px; }
pre.curl { white-space: pre-wrap; word-break: break-all; }
code { font-family: monospace; }
.optional { color: #57606a; }
.nowrap { white-space: nowrap; }
"""


def _text(markdown: str | None) -> str:
    """A description as HTML: escaped, `code` spans kept, docstring line breaks joined."""
    escaped = escape(" ".join((markdown or "").split()))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _resolve(schema: dict[str, Any], openapi: dict[str, Any]) -> dict[str, Any]:
    """The schema a `$ref` points to (components/schemas), or the schema itself."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return openapi["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def _variants(prop: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The non-null alternatives of a property, and whether null is one of them."""
    variants = prop.get("anyOf") or [prop]
    typed = [variant for variant in variants if variant.get("type") != "null"]
    return typed, len(typed) < len(variants)


def _type(variant: dict[str, Any]) -> str:
    if variant.get("type") == "array":
        return f"array of {_type(variant.get('items', {}))}"
    return str(variant.get("type", "any"))


def _bounds(variant: dict[str, Any]) -> str:
    """Allowed values, numeric range and length limits of one alternative, e.g. `1 ≤ x ≤ 7`."""
    if "enum" in variant:
        return "one of " + ", ".join(str(value) for value in variant["enum"])
    if "const" in variant:
        return f"exactly {variant['const']}"
    low, high = variant.get("minimum"), variant.get("maximum")
    parts = []
    if low is not None and high is not None:
        parts.append(f"{low:g} ≤ x ≤ {high:g}")
    elif low is not None:
        parts.append(f"x ≥ {low:g}")
    elif high is not None:
        parts.append(f"x ≤ {high:g}")
    if "minLength" in variant:
        parts.append(f"length ≥ {variant['minLength']}")
    if "maxLength" in variant:
        parts.append(f"length ≤ {variant['maxLength']}")
    return ", ".join(parts)


def _field_row(name: str, prop: dict[str, Any], required: bool, with_presence: bool) -> str:
    typed, nullable = _variants(prop)
    kind = " or ".join(_type(variant) for variant in typed) + (" or null" if nullable else "")
    bounds = "; ".join(bound for bound in map(_bounds, typed) if bound)
    cells = [f"<code>{escape(name)}</code>", f'<span class="nowrap">{escape(kind)}</span>', escape(bounds)]
    if with_presence:
        presence = "required" if required else "optional" + (": null or left out" if nullable else "")
        cells.append(presence if required else f'<span class="optional">{presence}</span>')
    cells.append(_text(prop.get("description")))
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _fields_table(schema: dict[str, Any], with_presence: bool) -> str:
    """One row per property: name, type, bounds, (required or optional,) description."""
    required = set(schema.get("required", ()))
    headers = ["Field", "Type", "Allowed values", *(["Presence"] if with_presence else []), "Description"]
    rows = [_field_row(name, prop, name in required, with_presence)
            for name, prop in schema.get("properties", {}).items()]
    head = "".join(f"<th>{header}</th>" for header in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def curl_command(method: str, url: str, body: dict[str, Any] | None) -> str:
    """The `curl` line that sends `body` (JSON) to `url`."""
    if body is None:
        return f"curl -s {url}" if method == "get" else f"curl -s -X {method.upper()} {url}"
    return (f"curl -s -X {method.upper()} {url} -H 'content-type: application/json' "
            f"-d {_shell_quote(json.dumps(body, separators=(',', ':')))}")


def _in_field_order(example: dict[str, Any] | None, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The example's keys in the order of the fields (the OpenAPI document sorts them)."""
    if example is None:
        return None
    order = {name: index for index, name in enumerate(schema.get("properties", {}))}
    return dict(sorted(example.items(), key=lambda item: order.get(item[0], len(order))))


def _request_section(operation: dict[str, Any], openapi: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The request fields and example body of an operation ("" and None when it takes no body)."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return "", None
    schema = _resolve(content["schema"], openapi)
    example = _in_field_order((schema.get("examples") or [None])[0], schema)
    parts = [f"<h3>Request body: {escape(schema.get('title', ''))}</h3>", f"<p>{_text(schema.get('description'))}</p>"]
    if schema.get("additionalProperties") is False:
        parts.append("<p>Any other field is refused (422).</p>")
    parts.append(_fields_table(schema, with_presence=True))
    if example is not None:
        parts.append(f"<h4>Example body</h4><pre class=\"example\">{escape(json.dumps(example, indent=2))}</pre>")
    return "".join(parts), example


def _responses_section(operation: dict[str, Any], openapi: dict[str, Any]) -> str:
    """The status codes the operation answers with, and the fields of its 200 answer."""
    parts = ["<h3>Responses</h3><ul>"]
    for status, response in sorted(operation.get("responses", {}).items()):
        parts.append(f"<li><code>{escape(status)}</code>: {_text(response.get('description'))}</li>")
    parts.append("</ul>")
    schema = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema:
        resolved = _resolve(schema, openapi)
        if resolved.get("properties"):
            parts.append(f"<h4>200 answer: {escape(resolved.get('title', ''))}</h4>")
            parts.append(_fields_table(resolved, with_presence=False))
    return "".join(parts)


def _anchor(method: str, path: str) -> str:
    return f"{method}-{re.sub(r'[^a-z0-9]+', '-', path.lower()).strip('-') or 'root'}"


def _operation_section(method: str, path: str, operation: dict[str, Any], openapi: dict[str, Any],
                       base_url: str) -> str:
    request, example = _request_section(operation, openapi)
    curl = curl_command(method, f"{base_url}{path}", example)
    return (
        f'<section id="{_anchor(method, path)}"><h2><span class="method">{method.upper()}</span> '
        f"<code>{escape(path)}</code>: {escape(operation.get('summary', ''))}</h2>"
        f"<p>{_text(operation.get('description'))}</p>{request}"
        f"<h3>Try it</h3><pre class=\"curl\">{escape(curl)}</pre>"
        f"{_responses_section(operation, openapi)}</section>"
    )


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, methods in openapi.get("paths", {}).items()
            for method, operation in methods.items()]


def render_docs(openapi: dict[str, Any], base_url: str) -> str:
    """The whole page for an OpenAPI document; `base_url` (no trailing slash) goes into the curl lines."""
    info = openapi.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    operations = _operations(openapi)
    contents = "".join(
        f'<li><a href="#{_anchor(method, path)}">{method.upper()} {escape(path)}</a>: '
        f"{escape(operation.get('summary', ''))}</li>"
        for method, path, operation in operations
    )
    sections = "".join(_operation_section(method, path, operation, openapi, base_url)
                       for method, path, operation in operations)
    return (
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        f"<p>{_text(info.get('description'))}</p>"
        "<p>Rendered by the service from its OpenAPI schema (<a href=\"/openapi.json\">/openapi.json</a>); "
        "this page needs no network.</p>"
        f"<ul>{contents}</ul>{sections}</body></html>"
    )
