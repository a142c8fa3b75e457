#!/usr/bin/env python3
"""Fails when the library's top-level modules import each other in a cycle (issue #21: "no import cycles
between modules, the error type aside"). A module's imports are the `crate::NAME` paths in its files,
comments and `#[cfg(test)]` parts left out; `error` and `lib` are not counted. Prints each cycle with the
files behind every edge."""
import os
import re
import sys

base = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "crates", "hoist", "src")
imports, where = {}, {}
for root, _, files in os.walk(base):
    for f in files:
        if not f.endswith(".rs"):
            continue
        full = os.path.join(root, f)
        rel = os.path.relpath(full, base)
        top = rel.split(os.sep)[0].removesuffix(".rs")
        if top == "lib":
            continue
        src = open(full, encoding="utf-8").read()
        test = src.find("#[cfg(test)]")
        if test >= 0:
            src = src[:test]
        src = "\n".join(l for l in src.split("\n") if not l.strip().startswith("//"))
        for dep in set(re.findall(r"crate::([a-z_]+)", src)) - {top, "error"}:
            imports.setdefault(top, set()).add(dep)
            where.setdefault((top, dep), set()).add(rel)
        imports.setdefault(top, set())
graph = {m: {d for d in deps if d in imports} for m, deps in imports.items() if m != "error"}

# Tarjan's strongly connected components: every component of more than one module is a cycle.
index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            cycles.append(sorted(comp))


for v in sorted(graph):
    if v not in index:
        visit(v)
for comp in cycles:
    print(f"module-cycles: {' <-> '.join(comp)}")
    for a in comp:
        for b in sorted(graph[a] & set(comp)):
            print(f"  {a} -> {b}: {', '.join(sorted(where[(a, b)]))}")
print(f"module-cycles: {len(graph)} modules, {len(cycles)} cycles")
sys.exit(1 if cycles else 0)
