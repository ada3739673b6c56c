#!/usr/bin/env python3
"""Lists import circles between the modules (files) of a Rust crate.

Usage: scripts/module-cycles.py crates/cohort-proto/src [more src dirs...]

A module depends on another when it names it in a path (`use crate::a::b`,
`super::x::Y`, or inline `crate::a::f()`). `mod` declarations and `pub use`
re-exports are not dependencies (a facade re-exporting its children is not
a circle). Exit status 1 when a circle exists, printing each one.
"""

import os
import re
import sys

PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
USE_GROUP = re.compile(r"\b(crate|super|self)((?:::\w+)*)::\{([^;]*?)\}", re.S)


def modules(src):
    """Maps module path tuples to files."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            out[tuple(rel)] = os.path.join(root, f)
    return out


def strip(text):
    """Drops comments, strings, `mod` lines and `pub use` items."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    text = re.sub(r"\bpub(\([^)]*\))?\s+use\b[^;]*;", "", text)
    text = re.sub(r"\b(pub(\([^)]*\))?\s+)?mod\s+\w+\s*;", "", text)
    return text


def reexports(mods):
    """(module, name) -> the module that defines a re-exported name, for
    `pub use self::child::{A, B}` facades: depending on `pg::Frame` is
    depending on the file that defines it, not on the facade."""
    out = {}
    pat = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+(self|super|crate)((?:::\w+)+)(?:::\{([^;]*?)\})?\s*;", re.S)
    for m, f in mods.items():
        text = re.sub(r"//[^\n]*", "", open(f, encoding="utf-8").read())
        for kind, path, group in pat.findall(text):
            segs = [x for x in path.split("::") if x]
            names = [g.strip().split(" as ")[-1] for g in group.split(",")] if group else [segs[-1]]
            base = segs if group else segs[:-1]
            target = resolve(mods, m, kind, base, {})
            for n in names:
                if n and n != "self" and target:
                    out[(m, n)] = target
    return out


def resolve(mods, here, kind, segs, rex):
    base = {"crate": [], "self": list(here)}.get(kind)
    if kind == "super":
        base = list(here[:-1])
    path = base + [s for s in segs if s]
    while path and segs and path[0] == "super":
        path = path[1:]
    # `super::super::x`: each leading super climbs once more.
    while "super" in path:
        i = path.index("super")
        path = path[: max(i - 1, 0)] + path[i + 1 :]
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in mods:
            found = tuple(path[:n])
            # Follow re-exports: `facade::Name` is `child::Name`.
            seen = set()
            while n < len(path) and (found, path[n]) in rex and (found, path[n]) not in seen:
                seen.add((found, path[n]))
                found = rex[(found, path[n])]
            return found
    return ()


def edges(mods):
    out = {m: set() for m in mods}
    rex = reexports(mods)
    for m, f in mods.items():
        text = strip(open(f, encoding="utf-8").read())
        found = []
        for kind, prefix, inner in USE_GROUP.findall(text):
            for item in re.split(r"[,{}]", inner):
                item = item.strip().split(" as ")[0]
                if item and item != "self":
                    found.append((kind, (prefix + "::" + item).split("::")))
                elif item == "self":
                    found.append((kind, prefix.split("::")))
        # The prefix of a `use a::{b, c}` group is not a dependency itself.
        for kind, rest in PATH.findall(USE_GROUP.sub("", text)):
            found.append((kind, rest.split("::")))
        # A path may also start with a child module's name (`locked::X`).
        children = {c[-1] for c in mods if c[:-1] == m and len(c) == len(m) + 1}
        for child in children:
            for rest in re.findall(r"(?<![:\w])" + child + r"((?:::\w+)+)", USE_GROUP.sub("", text)):
                found.append(("self", [child] + rest.split("::")[1:]))
        for kind, segs in found:
            t = resolve(mods, m, kind, segs, rex)
            if t != m and t in mods:
                out[m].add(t)
    return out


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) or "(crate root)"


def main():
    bad = False
    for src in sys.argv[1:]:
        mods = modules(src)
        g = edges(mods)
        found = cycles(g)
        if not found:
            print(f"{src}: no import circle among {len(mods)} modules")
        for comp in found:
            bad = True
            members = set(comp)
            print(f"{src}: circle among {', '.join(sorted(name(m) for m in comp))}")
            for m in sorted(comp):
                for t in sorted(g[m] & members):
                    print(f"    {name(m)} -> {name(t)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
