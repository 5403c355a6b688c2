"""Marginals of a calibrated junction tree over ANY set of attributes.

A clique marginal is read off its host clique. For attributes spread over several
cliques, the joint over the smallest subtree that connects them is the product of its
clique marginals divided by its separator marginals; variables no longer needed are summed
out as the messages travel to the subtree's root, so the tables stay small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from privsynth.generator.factor import Clique, expand, project
from privsynth.generator.junction import JunctionTree


def _multiply(a: np.ndarray, attrs_a: Clique, b: np.ndarray, attrs_b: Clique,
              sizes: Sequence[int]) -> tuple[np.ndarray, Clique]:
    union = tuple(sorted(set(attrs_a) | set(attrs_b)))
    return expand(a, attrs_a, union, sizes) * expand(b, attrs_b, union, sizes), union


def marginal(tree: JunctionTree, marginals: Sequence[np.ndarray], attrs: Clique) -> np.ndarray:
    """The model's marginal over ``attrs`` (sorted), in counts."""
    attrs = tuple(sorted(attrs))
    sizes = tree.sizes
    i = tree.covering(attrs)
    if i >= 0:
        return project(marginals[i], tree.cliques[i], attrs)
    total = float(marginals[0].sum())
    hosts = {tree.host((a,)) for a in attrs}
    if len({tree.component[h] for h in hosts}) > 1:  # different trees of a forest: independent parts
        groups: dict[int, list[int]] = {}
        for a in attrs:
            groups.setdefault(tree.component[tree.host((a,))], []).append(a)
        result: np.ndarray = np.array(1.0)
        rattrs: Clique = ()
        for group in groups.values():
            part = marginal(tree, marginals, tuple(group)) / total
            result, rattrs = _multiply(result, rattrs, part, tuple(group), sizes)
        return project(result, rattrs, attrs) * total
    nodes, root = steiner(tree, hosts)
    want = set(attrs)
    messages: dict[int, tuple[np.ndarray, Clique]] = {}
    children: dict[int, list[int]] = {}
    for node in nodes:  # deepest first: every child before its parent
        clique = tree.cliques[node]
        up = tree.parent[node] if node != root else -1
        sep = tree.separator(node, up) if up >= 0 else ()
        mine = children.get(node, [])
        # sum out, before any product, what neither a separator on the path nor the query needs
        needed = set(sep).union(*(tree.separator(node, c) for c in mine)) | (want & set(clique))
        fattrs = tuple(a for a in clique if a in needed)
        local = project(marginals[node], clique, fattrs) / total
        operands = [(local, fattrs)] + [messages.pop(child) for child in mine]
        if up < 0:
            return _contract(operands, attrs) * total
        present = {a for _, oattrs in operands for a in oattrs}
        keep = tuple(sorted(a for a in present if a in sep or a in want))
        factor = _contract(operands, keep)
        sep_marginal = project(local, fattrs, sep)
        below = expand(sep_marginal, sep, keep, sizes)
        messages[node] = (factor / np.where(below > 0, below, 1.0), keep)
        children.setdefault(up, []).append(node)
    raise AssertionError("unreachable")  # pragma: no cover


def _contract(operands: list[tuple[np.ndarray, Clique]], out: Clique) -> np.ndarray:
    """The product of factors summed down to ``out``, in one pass (no union-sized table)."""
    if len(operands) == 1:
        values, attrs = operands[0]
        return project(values, attrs, out)
    label = {a: k for k, a in enumerate(sorted({a for _, attrs in operands for a in attrs}))}
    args: list[Any] = []
    for values, attrs in operands:
        args += [values, [label[a] for a in attrs]]
    args.append([label[a] for a in out])
    return np.asarray(np.einsum(*args))


def steiner(tree: JunctionTree, hosts: set[int]) -> tuple[list[int], int]:
    """The smallest subtree connecting ``hosts`` (one component of the rooted forest):
    its nodes, deepest first, and its top node."""
    nodes = set(hosts)
    frontier = set(hosts)
    # climb the deepest nodes until every path has met at one node
    while len(frontier) > 1:
        deepest = max(frontier, key=lambda n: tree.depth[n])
        frontier.discard(deepest)
        up = tree.parent[deepest]
        nodes.add(up)
        frontier.add(up)
    root = next(iter(frontier))
    return sorted(nodes, key=lambda n: -tree.depth[n]), root
