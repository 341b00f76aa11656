#!/usr/bin/env python3
"""Checks that the store is the library's bottom layer: no file under pam_mfa/src/store/
names a module of the library outside the store.

The store may name `crate::store::...`, and the library's one error type
(`crate::Error`, `crate::Result`, and the `crate::error` module that defines them and the
error types they wrap). Anything else (`crate::policy`, `crate::enrollment`, ...) would
make the rules above the store and the store depend on each other: a rule the store needs
is passed in by its caller, and a plain type or constant it needs is defined in the store
and re-exported above.

The error type is the one way out of the store, so it is checked too: `error.rs` may name
only the small modules whose types or helpers its messages use (`code`, `clock`), and
those name nothing of the library but the error type. Through them no path leads from the
store back to a module above it, so there is no dependency circle through the store.

Every `crate::` path counts, in `use` lines and in code, tests included; comments do not
(a doc comment may point to the layer above). Exits 1 and names each offending path.

It also fails on any dependency circle among the library's top-level modules (tests
aside), so that the layers above the store stay a hierarchy too.

Usage: scripts/check-layers.py [repository root]
"""

import pathlib
import re
import sys

ALLOWED = {"store", "Error", "Result", "error"}

# Files outside the store that the store reaches through `crate::error`, and the library
# modules each may name besides the error type itself.
BELOW_THE_STORE = {
    "pam_mfa/src/error.rs": {"code", "clock"},
    "pam_mfa/src/code.rs": set(),
    "pam_mfa/src/clock.rs": set(),
}

PATH = re.compile(r"\bcrate\s*::\s*(\{|[A-Za-z_][A-Za-z0-9_]*)")


def strip_comments(text: str) -> str:
    """Removes // and /* */ comments, keeping line numbers (string literals in the
    store never contain them)."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def group_heads(text: str, start: int) -> list[str]:
    """The first path segment of each item of the `{...}` group opening at `start`."""
    depth, item, heads = 0, "", []
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                heads.append(item)
                break
        if depth == 1 and ch == ",":
            heads.append(item)
            item = ""
        elif depth >= 1:
            item += ch
    return [re.split(r"\s*::\s*|\s+", h.strip())[0] for h in heads if h.strip()]


def named(path: pathlib.Path) -> list[tuple[int, str]]:
    """Every library module `path` names as `crate::<module>`, with its line."""
    text = strip_comments(path.read_text(encoding="utf-8"))
    out = []
    for m in PATH.finditer(text):
        heads = group_heads(text, m.start(1)) if m.group(1) == "{" else [m.group(1)]
        line = text.count("\n", 0, m.start()) + 1
        out.extend((line, head) for head in heads if head != "self")
    return out


def violations(root: pathlib.Path) -> list[str]:
    found = []
    store = root / "pam_mfa" / "src" / "store"
    files = sorted(store.rglob("*.rs"))
    if not files:
        found.append(f"{store}: no Rust files found (wrong root?)")
    for path in files:
        for line, head in named(path):
            if head not in ALLOWED:
                found.append(f"{path.relative_to(root)}:{line}: crate::{head}")
    for rel, extra in BELOW_THE_STORE.items():
        for line, head in named(root / rel):
            if head not in (ALLOWED - {"store"}) | extra:
                found.append(f"{rel}:{line}: crate::{head} (reached from the store)")
    return found


def top_module(src: pathlib.Path, path: pathlib.Path) -> str:
    """The library's top-level module a file belongs to (`store/devices.rs` → `store`)."""
    parts = path.relative_to(src).with_suffix("").parts
    return parts[0] if parts[0] not in ("lib", "mod") else "lib"


def circles(root: pathlib.Path) -> list[list[str]]:
    """Dependency circles among the library's top-level modules, from every
    `crate::<module>` a file names outside its test modules (a test may use anything)."""
    src = root / "pam_mfa" / "src"
    graph: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.rs")):
        if path.name in ("tests.rs", "test_support.rs") or path.name.endswith("_tests.rs"):
            continue
        text = strip_comments(path.read_text(encoding="utf-8"))
        text = re.split(r"#\[cfg\(test\)\]\s*(?:#\[allow[^\]]*\]\s*)?mod \w+ \{", text)[0]
        here = top_module(src, path)
        node = graph.setdefault(here, set())
        for m in PATH.finditer(text):
            heads = group_heads(text, m.start(1)) if m.group(1) == "{" else [m.group(1)]
            node.update(h for h in heads if h not in ("self", "Error", "Result", here))
    # Tarjan's strongly connected components; any with two or more modules is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    found = violations(root)
    for v in found:
        print(f"store imports from above it: {v}", file=sys.stderr)
    loops = circles(root)
    for c in loops:
        print(f"dependency circle among the library's modules: {' -> '.join(c)}", file=sys.stderr)
    if found or loops:
        return 1
    n = len(list((root / "pam_mfa" / "src" / "store").rglob("*.rs")))
    print(
        f"ok: {n} files under pam_mfa/src/store name nothing of the library above the store, "
        f"and {', '.join(sorted(pathlib.Path(p).name for p in BELOW_THE_STORE))} lead nowhere above it; "
        "no dependency circle among the library's modules"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
