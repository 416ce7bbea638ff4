"""Pins the part of OpenAI's OpenAPI document that the Responses API tests validate against.

Usage: python3 extract.py OPENAPI_JSON > responses-schemas.json

It keeps the schemas reachable from the roots below (every `$ref` followed), without their
prose: `description`, `example(s)`, `title` and the `x-*` annotations are dropped, the rest is
kept as published. README.md beside this file says which document and commit it was run on.
"""

import json
import sys

ROOTS = ["Response", "ResponseStreamEvent", "ErrorResponse"]
PROSE = {"description", "example", "examples", "title"}


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def strip(node, in_properties=False):
    if isinstance(node, dict):
        return {
            key: strip(value, key == "properties")
            for key, value in node.items()
            if in_properties or not (key in PROSE or key.startswith("x-"))
        }
    if isinstance(node, list):
        return [strip(value) for value in node]
    return node


def main():
    document = json.load(open(sys.argv[1]))
    schemas = document["components"]["schemas"]
    kept, stack = {}, list(ROOTS)
    while stack:
        name = stack.pop()
        if name not in kept:
            kept[name] = schemas[name]
            stack.extend(refs(schemas[name]))
    pinned = {
        "openapi": document["openapi"],
        "info": {"title": document["info"]["title"], "version": document["info"]["version"]},
        "components": {"schemas": {name: strip(kept[name]) for name in sorted(kept)}},
    }
    json.dump(pinned, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
