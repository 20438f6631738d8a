#!/usr/bin/env python3
"""Fail when the modules of a crate import each other in a cycle.

    scripts/module_cycles.py [CRATE_DIR ...]    (default: every crates/*)

A module is a source file (`src/a/b.rs` or `src/a/b/mod.rs` is `a::b`).
File A depends on module B when its code names `crate::B...` (in a `use`
or a path), `super::...` resolving to B, or a child module it declares
(`mod x;` is not an edge: a parent owns its children). Dependencies are
taken at the deepest module that exists (`crate::push::tree::X` is
`push::tree`), and a file never depends on its own ancestors through
`super` for being their child. Test modules (`#[cfg(test)]` blocks and
files under `tests`) are ignored: tests may look anywhere.

Prints each cycle (strongly connected component of more than one
module) and exits 1 when there is one; exits 0 and says how many modules
it checked otherwise.

    scripts/module_cycles.py --known scripts/known_cycles.txt

is the ratchet CI runs: the cycles listed there (still to break) pass,
any other fails, and so does a listed one that changed or went (so the
list only shrinks).
"""

import os
import re
import sys

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def modules(src):
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            if "tests" in rel or rel[-1:] == ["tests"]:
                continue
            out[tuple(rel)] = os.path.join(dirpath, f)
    return out


def strip_tests(text):
    """Drop `#[cfg(test)] mod x { ... }` blocks (brace matching)."""
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.find("{", j)
        semi = text.find(";", j)
        if k < 0 or (0 <= semi < k):
            i = semi + 1 if semi >= 0 else len(text)
            continue
        depth, p = 0, k
        while p < len(text):
            if text[p] == "{":
                depth += 1
            elif text[p] == "}":
                depth -= 1
                if depth == 0:
                    break
            p += 1
        i = p + 1


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def resolve(mods, base):
    """The deepest existing module of a path."""
    for n in range(len(base), 0, -1):
        if tuple(base[:n]) in mods:
            return tuple(base[:n])
    return ()


def graph(mods):
    edges = {m: set() for m in mods}
    for m, path in mods.items():
        text = strip_comments(strip_tests(open(path, encoding="utf-8").read()))
        # `use crate::{a, b::c}` groups: expand one level.
        for g in re.finditer(r"\b(crate|super)::\{([^}]*)\}", text):
            for item in g.group(2).split(","):
                item = item.strip().split(" as ")[0].strip()
                if item:
                    text += f" {g.group(1)}::{item}"
        for hit in PATH.finditer(text):
            parts = hit.group(2).strip(":").split("::")
            if hit.group(1) == "crate":
                base = parts
            else:
                here = list(m) if not path.endswith("mod.rs") and m else list(m)
                # `super` from a.rs is the parent of `a`; from a/mod.rs too.
                base = here[:-1] + [p for p in parts if p != "super"]
            target = resolve(mods, base)
            if target and target != m and not (m[: len(target)] == target):
                edges[m].add(target)
    return edges


def cycles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def known_cycles(path):
    """The cycles `--known FILE` lists, one per line: `crate: a, b, c`."""
    out = set()
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                crate, _, mods = line.partition(":")
                out.add((crate.strip(), tuple(sorted(m.strip() for m in mods.split(",")))))
    return out


def main(args):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    known = None
    if args[:1] == ["--known"]:
        known, args = known_cycles(args[1]), args[2:]
    crates = args or sorted(os.path.join(root, "crates", c) for c in os.listdir(os.path.join(root, "crates")))
    bad, total = 0, 0
    seen = set()
    for c in crates:
        mods = modules(os.path.join(c, "src"))
        total += len(mods)
        edges = graph(mods)
        for comp in cycles(edges):
            names = ["::".join(m) or "lib" for m in comp]
            key = (os.path.basename(c), tuple(sorted(names)))
            seen.add(key)
            if known is not None and key in known:
                continue
            bad += 1
            print(f"{os.path.basename(c)}: modules import each other in a cycle: {', '.join(names)}")
            for m in comp:
                inside = sorted("::".join(t) for t in edges[m] if t in comp)
                print(f"    {'::'.join(m)} -> {', '.join(inside)}")
    if known is not None:
        for crate, mods in sorted(known - seen):
            print(f"{crate}: the known cycle {', '.join(mods)} is gone or changed: update the --known file")
            bad += 1
    if bad:
        print(f"{bad} cycles" + (" not in the known list" if known is not None else ""))
        return 1
    if known:
        print(f"no new cycles among {total} modules of {len(crates)} crates ({len(known)} known, to break)")
        return 0
    print(f"no cycles among {total} modules of {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
