#!/usr/bin/env python3
"""Scrape a Prometheus /metrics URL and parse it with prometheus_client's text parser.

Prints one JSON object: {"families": N, "samples": [{"name", "labels", "value"}, ...]}.
Exits 2 when the text does not parse, so a malformed exposition fails the caller's test.
Used by the operations process tests (Tests/*/OperationsProcessTests.swift); needs
`pip install prometheus_client` (tools/setup.sh installs it).
"""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=10) as response:
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode("utf-8")
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as error:  # the parser raises ValueError and friends
        print(f"unparsable exposition from {url}: {error}", file=sys.stderr)
        return 2
    samples = [
        {"name": s.name, "labels": dict(s.labels), "value": s.value}
        for family in families
        for s in family.samples
    ]
    print(json.dumps({"families": len(families), "content_type": content_type, "samples": samples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
