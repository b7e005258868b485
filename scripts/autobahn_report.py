#!/usr/bin/env python3
"""Summarises a kosoku (Autobahn TestSuite) report folder as a Markdown table per case group.

usage: autobahn_report.py OUTDIR [--allow-unimplemented GROUP ...]

Exits 1 if any case is FAILED, NON-STRICT, or UNIMPLEMENTED outside the allowed groups (none unless
named), so CI turns red on any regression.
"""
import json
import sys
from collections import Counter, defaultdict

COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    allowed = set(sys.argv[3:]) if len(sys.argv) > 2 and sys.argv[2] == "--allow-unimplemented" else set()
    with open(f"{outdir}/index.json") as f:
        index = json.load(f)
    bad = []
    for agent, cases in index.items():
        groups = defaultdict(Counter)
        for case, result in cases.items():
            group = case.split(".")[0]
            behavior = result["behavior"]
            # A case whose closing behaviour failed has failed, whatever its message behaviour.
            if result.get("behaviorClose") == "FAILED":
                behavior = "FAILED"
            groups[group][behavior] += 1
            if behavior in ("FAILED", "NON-STRICT") or (behavior == "UNIMPLEMENTED" and group not in allowed):
                bad.append(f"{case}: {behavior} (close: {result.get('behaviorClose')})")
        print(f"Agent `{agent}`, {len(cases)} cases\n")
        print("| group | " + " | ".join(COLUMNS) + " |")
        print("|---|" + "---|" * len(COLUMNS))
        total = Counter()
        for group in sorted(groups, key=int):
            total.update(groups[group])
            print(f"| {group} | " + " | ".join(str(groups[group][c]) for c in COLUMNS) + " |")
        print("| **all** | " + " | ".join(f"**{total[c]}**" for c in COLUMNS) + " |")
        print()
    for line in bad:
        print(f"not accepted: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
