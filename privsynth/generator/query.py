"""Marginals of a calibrated junction tree over ANY set of attributes.

A clique marginal is read off its host clique. For attributes spread over several
cliques, the joint over the smallest subtree that connects them is the product of its
clique marginals divided by its separator marginals; variables no longer needed are summed
out as the messages travel to the subtree's root, so the tables stay small.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    want = set(attrs)
    for i, c in enumerate(tree.cliques):
        if want <= set(c):
            return project(marginals[i], c, attrs)
    total = float(marginals[0].sum())
    hosts = {tree.host((a,)) for a in attrs}
    # the smallest subtree connecting the hosts: prune leaves that are not hosts
    nodes = set(range(len(tree.cliques)))
    adjacency = {i: set(tree.neighbours[i]) for i in nodes}
    component = _component(adjacency, next(iter(hosts)))
    nodes = set(component)
    changed = True
    while changed:
        changed = False
        for i in list(nodes):
            if i not in hosts and len(adjacency[i] & nodes) <= 1:
                nodes.discard(i)
                changed = True
    if not hosts <= nodes:  # attributes in different trees of a forest: independent parts
        groups: dict[int, list[int]] = {}
        for a in attrs:
            groups.setdefault(min(_component(adjacency, tree.host((a,)))), []).append(a)
        result: np.ndarray = np.array(1.0)
        rattrs: Clique = ()
        for group in groups.values():
            part = marginal(tree, marginals, tuple(group)) / total
            result, rattrs = _multiply(result, rattrs, part, tuple(group), sizes)
        return project(result, rattrs, attrs) * total
    root = next(iter(hosts))
    order, parent = _post_order(root, nodes, adjacency)
    messages: dict[int, tuple[np.ndarray, Clique]] = {}
    for i in order:
        clique = tree.cliques[i]
        factor, fattrs = marginals[i] / total, clique
        for child in (j for j in adjacency[i] & nodes if parent.get(j) == i):
            cm, cattrs = messages[child]
            factor, fattrs = _multiply(factor, fattrs, cm, cattrs, sizes)
        if i == root:
            return project(factor, fattrs, attrs) * total
        sep = tuple(sorted(set(clique) & set(tree.cliques[parent[i]])))
        sep_marginal = project(marginals[i] / total, clique, sep)
        factor = factor / np.where(expand(sep_marginal, sep, fattrs, sizes) > 0,
                                   expand(sep_marginal, sep, fattrs, sizes), 1.0)
        keep = tuple(a for a in fattrs if a in sep or a in want)
        messages[i] = (project(factor, fattrs, keep), keep)
    raise AssertionError("unreachable")  # pragma: no cover


def _component(adjacency: dict[int, set[int]], start: int) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        i = stack.pop()
        for j in adjacency[i]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def _post_order(root: int, nodes: set[int], adjacency: dict[int, set[int]]) -> tuple[list[int], dict[int, int]]:
    parent: dict[int, int] = {}
    order: list[int] = []
    stack = [(root, False)]
    seen = {root}
    while stack:
        i, expanded = stack.pop()
        if expanded:
            order.append(i)
            continue
        stack.append((i, True))
        for j in adjacency[i] & nodes:
            if j not in seen:
                seen.add(j)
                parent[j] = i
                stack.append((j, False))
    return order, parent
