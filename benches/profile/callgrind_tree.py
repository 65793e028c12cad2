#!/usr/bin/env python3
"""Per-request costs by function from a callgrind dump, the files of inlined code merged (so a
function's cost is not split over the files its inlined callees came from, as
`callgrind_annotate` splits it).

usage: callgrind_tree.py FILE REQUESTS [--self] [--top K] [--callees SUBSTRING]

Without --callees: the functions by inclusive (or, with --self, exclusive) instructions per
request. With --callees: every function whose name contains SUBSTRING, and what it calls (per
request: instructions, calls).
"""
import collections
import re
import sys


def main():
    path, requests = sys.argv[1], int(sys.argv[2])
    args = sys.argv[3:]
    top = int(args[args.index("--top") + 1]) if "--top" in args else 40
    names = {}

    def name(spec):
        m = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names[m.group(1)]

    own = collections.Counter()
    calls = collections.Counter()
    counts = collections.Counter()
    fn = cfn = pending = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("fn="):
                fn = name(line[3:])
            elif line.startswith("cfn="):
                cfn = name(line[4:])
            elif line.startswith("calls="):
                pending = (cfn, int(line[6:].split()[0]))
            elif line[0].isdigit() or line[0] in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                cost = int(parts[1])
                if pending:
                    if pending[0] != fn:
                        calls[(fn, pending[0])] += cost
                        counts[(fn, pending[0])] += pending[1]
                    pending = None
                else:
                    own[fn] += cost
    inclusive = collections.Counter(own)
    for (caller, _), cost in calls.items():
        inclusive[caller] += cost
    total = sum(own.values())

    def short(s):
        return s if len(s) <= 160 else s[:160] + "…"

    if "--callees" in args:
        pattern = args[args.index("--callees") + 1]
        for f in sorted((k for k in inclusive if pattern in k), key=lambda k: -inclusive[k]):
            print(f"{inclusive[f] / requests:9.0f} incl {own[f] / requests:8.0f} self  {short(f)}")
            callees = sorted(((c, b) for (a, b), c in calls.items() if a == f), reverse=True)
            for cost, callee in callees[:top]:
                per = counts[(f, callee)] / requests
                print(f"      {cost / requests:9.0f}  {per:6.2f}x  {short(callee)}")
        return
    print(f"{total / requests:.0f} instructions per request")
    for f, cost in (own if "--self" in args else inclusive).most_common(top):
        print(f"{cost / requests:9.0f} {100 * cost / total:5.1f}%  {short(f)}")


if __name__ == "__main__":
    main()
