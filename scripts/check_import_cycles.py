"""Fail when any two modules of arscore's packages import each other, directly or through others.

import-linter's contracts check the direction between packages and layers; this checks the
module graph itself (grimp's, the one import-linter builds), so a cycle inside one package,
which no layer contract sees, fails ``make lint`` too. Imports inside functions and under
``TYPE_CHECKING`` count: they are cycles a reader has to untangle all the same.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ("features", "training", "serving", "arscore")


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative: every group of two or more modules that import in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def main() -> int:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    groups = strongly_connected(graph)
    for group in groups:
        print(f"import cycle among {len(group)} modules: {', '.join(group)}")
        for module in group:
            inside = sorted(set(graph.find_modules_directly_imported_by(module)) & set(group))
            print(f"  {module} imports {', '.join(inside)}")
    if groups:
        return 1
    print(f"no import cycles among {len(graph.modules)} modules of {', '.join(PACKAGES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
