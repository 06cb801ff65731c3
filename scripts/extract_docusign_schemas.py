"""Extract from DocuSign's official eSignature REST v2.1 OpenAPI (Swagger 2.0) spec the
request-body schemas of the operations closeloop calls, with every definition they
reference, descriptions dropped: the loopback DocuSign server in the tests validates
against this extract (the full spec is 4 MB).

    python scripts/extract_docusign_schemas.py SPEC.json closeloop/demo/docusign/esignature-v2.1-extract.json
"""
from __future__ import annotations

import json
import sys
from typing import Any

# (method, path) of every call closeloop makes with a body.
OPERATIONS = [
    ("post", "/v2.1/accounts/{accountId}/envelopes"),
    ("put", "/v2.1/accounts/{accountId}/envelopes/{envelopeId}"),
]
DROP = {"description", "x-ms-summary", "x-ds-definition-name", "example", "x-ds-category", "x-ds-section"}


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.split("/")[-1])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def stripped(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: stripped(v) for k, v in node.items() if k not in DROP}
    if isinstance(node, list):
        return [stripped(v) for v in node]
    return node


def main(source: str, target: str) -> None:
    spec = json.load(open(source, encoding="utf-8"))
    operations, wanted = {}, set()
    for method, path in OPERATIONS:
        operation = spec["paths"][path][method]
        body = next(p for p in operation["parameters"] if p.get("in") == "body")
        operations[f"{method.upper()} {path}"] = body["schema"]["$ref"].split("/")[-1]
        wanted |= refs(body["schema"])
    definitions: dict[str, Any] = {}
    missing: list[str] = []
    while wanted:
        name = wanted.pop()
        if name in definitions:
            continue
        if name not in spec["definitions"]:  # the spec refers to a few definitions it never defines
            missing.append(name)
            definitions[name] = {}
            continue
        definitions[name] = stripped(spec["definitions"][name])
        wanted |= refs(definitions[name]) - set(definitions)
    extract = {"source": "DocuSign eSignature REST API v2.1 OpenAPI (Swagger 2.0), "
                         "github.com/docusign/OpenAPI-Specifications, MIT license (LICENSE-OpenAPI-Specifications)",
               "info": spec["info"].get("version"), "operations": operations,
               "undefined_in_spec": sorted(missing),
               "definitions": dict(sorted(definitions.items()))}
    with open(target, "w", encoding="utf-8") as out:
        json.dump(extract, out, indent=1, sort_keys=False)
        out.write("\n")
    print(f"{len(definitions)} definitions for {len(operations)} operations -> {target}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
