"""Prints the numeric rule's verdict on every vector of a vector file (test/vectors/numbers.json) as
one JSON list, for the test that checks the Python rule against the TypeScript one."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import parse_number  # noqa: E402


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    out = []
    for v in vectors:
        value, reason = parse_number(v["cell"])
        out.append({"cell": v["cell"], "refused": reason} if reason else {"cell": v["cell"], "value": value})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
