"""Estimator, junction tree, sampling, compression, and what the built-in generators learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import ModelTooLargeError, NotFittedError
from privsynth.generator import Synthesizer
from privsynth.generator.estimate import Measurement, mirror_descent
from privsynth.generator.factor import contingency
from privsynth.generator.junction import JunctionTree
from privsynth.schema import load_schema

TABLE_SCHEMA = {
    "name": "toy", "input": "table",
    "columns": [
        {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
         "domain": {"categories": ["F", "M"], "other": False, "missing": False}},
        {"name": "stage", "kind": "categorical", "role": "sensitive", "source": {"column": "stage"},
         "domain": {"categories": [1, 2, 3], "other": False, "missing": False}},
        {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
         "domain": {"lower": 0, "upper": 99, "bins": 10, "missing": False}},
        {"name": "smoker", "kind": "boolean", "role": "sensitive", "source": {"column": "smoker"}},
    ],
}


def toy_frame(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    age = rng.integers(0, 100, n)
    stage = np.where(age > 60, rng.choice([2, 3], n), rng.choice([1, 2], n))
    smoker = rng.random(n) < np.where(sex == "M", 0.4, 0.2)
    return pd.DataFrame({"sex": sex, "stage": stage, "age": age, "smoker": smoker})


def test_noise_free_measurements_are_reproduced_exactly():
    rng = np.random.default_rng(1)
    sizes = (2, 3, 4)
    codes = np.column_stack([rng.integers(0, s, 500) for s in sizes])
    codes[:, 1] = (codes[:, 0] + codes[:, 1] * (rng.random(500) < 0.7)) % 3  # correlate 0 and 1
    cliques = [(0, 1), (1, 2)]
    ms = [Measurement(c, contingency(codes, c, sizes).astype(float), 1e-3) for c in cliques]
    est = mirror_descent(ms, sizes, iterations=3000, total=500)
    for c in cliques:
        h = est.tree.host(c)
        from privsynth.generator.factor import project

        got = project(est.marginals[h], est.tree.cliques[h], c)
        np.testing.assert_allclose(got, contingency(codes, c, sizes), atol=0.05)


def test_junction_tree_of_a_cycle_is_triangulated():
    tree = JunctionTree([(0, 1), (1, 2), (2, 3), (0, 3)], (2, 2, 2, 2))
    assert max(len(c) for c in tree.cliques) == 3
    assert len(tree.edges) == len(tree.cliques) - 1


def test_memory_cap_refuses_a_huge_clique():
    with pytest.raises(ModelTooLargeError, match="cells"):
        JunctionTree([(0, 1, 2)], (1000, 1000, 1000), max_cells=10**6)


def test_sampling_matches_the_model_marginals():
    rng = np.random.default_rng(2)
    sizes = (3, 4, 2)
    codes = np.column_stack([rng.integers(0, s, 3000) for s in sizes])
    codes[:, 2] = (codes[:, 1] > 1).astype(int)
    ms = [Measurement(c, contingency(codes, c, sizes).astype(float), 1e-3) for c in [(0, 1), (1, 2)]]
    est = mirror_descent(ms, sizes, iterations=2000, total=3000)
    sample = est.tree.sample(est.marginals, 200_000, np.random.default_rng(3))
    for c in [(0, 1), (1, 2)]:
        want = contingency(codes, c, sizes) / 3000
        got = contingency(sample, c, sizes) / 200_000
        np.testing.assert_allclose(got, want, atol=0.01)  # SE of a cell <= 0.0011


def test_mst_spends_exactly_the_budget_in_its_three_parts():
    schema = load_schema(TABLE_SCHEMA)
    synth = Synthesizer(schema, epsilon=1.0, delta=1e-6, method="mst")
    assert synth.fit(toy_frame()) is synth
    acc = synth.accountant_
    assert acc.rho_spent <= acc.rho_total
    assert acc.rho_spent == pytest.approx(acc.rho_total, rel=1e-6)
    d = len(schema.learned_columns)
    refine = [c for c in acc.charges if c.purpose.startswith("within-bin")]
    assert len(refine) == 1  # one numeric column: age
    assert len(acc.charges) == 1 + d + (d - 1) + (d - 1)  # detail, 1-ways, selections, 2-ways
    from privsynth.generator.mst import SPLIT

    selection = sum(c.rho for c in acc.charges if c.purpose.startswith("select"))
    left = acc.rho_total - refine[0].rho
    assert selection == pytest.approx(left * SPLIT[1] / sum(SPLIT), rel=1e-6)


def test_aim_charges_every_selection_and_measurement():
    schema = load_schema(TABLE_SCHEMA)
    acc = Synthesizer(schema, epsilon=2.0, method="aim").fit(toy_frame()).accountant_
    selections = [c for c in acc.charges if c.purpose.startswith("select")]
    d = len(schema.learned_columns)
    measured = [c for c in acc.charges if "-way" in c.purpose and not c.purpose.startswith("1-way again")][d:]
    assert len(selections) >= 1 and len(measured) == len(selections)  # no refusal on a toy table
    assert all(c.mechanism.startswith("report noisy max") for c in selections)
    assert all(c.mechanism.startswith("discrete Gaussian") for c in measured)


def test_sample_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="fit"):
        Synthesizer(load_schema(TABLE_SCHEMA)).sample(5)


@pytest.mark.parametrize("method", ["aim", "mst"])
def test_dp_model_keeps_a_strong_correlation(method):
    """At epsilon 3 on 2000 rows, age>60 -> stage>=2 must survive (strong pairs are selected)."""
    schema = load_schema(TABLE_SCHEMA)
    wins = 0
    for seed in range(5):
        out = Synthesizer(schema, epsilon=3.0, method=method).fit(toy_frame(seed=seed)).sample(4000, rng=seed)
        old = out["age"] > 65
        wins += (out.loc[old, "stage"] >= 2).mean() > 0.85
    assert wins >= 4


def test_compression_merges_only_rare_categories_and_expands_back():
    from privsynth.generator.compress import Compression

    comp = Compression.from_noisy(np.array([100.0, 2.0, -3.0, 50.0, 1.0]), sigma=5.0, threshold=1.0)
    assert comp.size == 3  # 0 and 3 kept, {1, 2, 4} merged
    assert list(comp.to_small) == [0, 2, 2, 1, 2]
    np.testing.assert_allclose(comp.compress_counts(np.array([1.0, 2, 3, 4, 5])), [1, 4, 10])
    back = comp.expand(np.array([0, 1, 2, 2, 2, 2] * 500), np.random.default_rng(0))
    assert set(back[::6]) == {0} and set(back[1::6]) == {3}
    merged = back[np.isin(np.arange(back.size) % 6, [2, 3, 4, 5])]
    assert set(merged) <= {1, 2, 4}
    # weights follow the clipped noisy counts 2 : 0 : 1
    assert abs((merged == 1).mean() - 2 / 3) < 0.05 and (merged == 2).mean() < 0.01


def test_marginal_query_over_cliques_matches_brute_force():
    rng = np.random.default_rng(4)
    sizes = (2, 3, 2, 4, 3)
    cliques = [(0, 1), (1, 2), (2, 3), (0, 4)]
    ms = [Measurement(c, rng.integers(1, 50, tuple(sizes[a] for a in c)).astype(float), 1.0) for c in cliques]
    est = mirror_descent(ms, sizes, iterations=50, total=1000)
    assert_queries_match_brute_force(est, sizes, [(0, 3), (1, 3, 4), (2, 4), (0, 2, 3), (3,)])


def assert_queries_match_brute_force(est, sizes, queries, total=1000):
    """Each query's marginal equals the projection of the full joint of the calibrated tree
    (product of clique marginals over separator marginals), built by brute force."""
    from privsynth.generator.factor import expand, project
    from privsynth.generator.query import marginal

    full = tuple(range(len(sizes)))
    joint = np.ones(sizes)
    for i, c in enumerate(est.tree.cliques):
        joint = joint * expand(est.marginals[i] / total, c, full, sizes)
    for i, j in est.tree.edges:
        sep = est.tree.separator(i, j)
        joint = joint / expand(project(est.marginals[i] / total, est.tree.cliques[i], sep), sep, full, sizes)
    assert joint.sum() == pytest.approx(1.0)
    for attrs in queries:
        np.testing.assert_allclose(marginal(est.tree, est.marginals, attrs), project(joint, full, attrs) * total,
                                   rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("epsilon", "again"), [(0.05, True), (3.0, False)], ids=["noisy", "clear"])
def test_aim_measures_one_way_marginals_twice_only_in_the_noisy_regime(epsilon, again):
    schema = load_schema(TABLE_SCHEMA)
    acc = Synthesizer(schema, epsilon=epsilon, method="aim").fit(toy_frame()).accountant_
    repeated = [c for c in acc.charges if c.purpose.startswith("1-way again")]
    assert (len(repeated) == len(schema.learned_columns)) is again and (len(repeated) == 0) is not again
    assert acc.rho_spent <= acc.rho_total


@pytest.mark.parametrize("stratified", [True, False], ids=["stratified", "iid"])
def test_sampling_adds_no_correlation_between_independent_columns(stratified):
    """Unlike rounding to sorted ranks, the sampler must keep independent columns independent."""
    sizes = (10, 10)
    ms = [Measurement((0,), np.full(10, 100.0), 1e-3), Measurement((1,), np.arange(1, 11) * 10.0, 1e-3)]
    est = mirror_descent(ms, sizes, iterations=200, total=1000)
    sample = est.tree.sample(est.marginals, 20_000, np.random.default_rng(8), stratified=stratified)
    r = np.corrcoef(sample[:, 0], sample[:, 1])[0, 1]
    assert abs(r) < 0.03  # SE of r is 0.007
    joint = contingency(sample, (0, 1), sizes) / 20_000
    product = np.outer(joint.sum(1), joint.sum(0))
    assert 0.5 * np.abs(joint - product).sum() < 0.03


def test_stratified_sampling_matches_the_model_more_closely_than_iid():
    rng = np.random.default_rng(6)
    sizes = (4, 6)
    codes = np.column_stack([rng.integers(0, s, 2000) for s in sizes])
    ms = [Measurement((0, 1), contingency(codes, (0, 1), sizes).astype(float), 1e-3)]
    est = mirror_descent(ms, sizes, iterations=300, total=2000)
    want = est.marginals[0] / 2000
    gaps = {}
    for stratified in (True, False):
        errs = [0.5 * np.abs(contingency(est.tree.sample(est.marginals, 2000, np.random.default_rng(k),
                                                         stratified=stratified), (0, 1), sizes) / 2000 - want).sum()
                for k in range(10)]
        gaps[stratified] = float(np.mean(errs))
    assert gaps[True] < 0.7 * gaps[False]


def test_one_way_plan_follows_the_dp_signal():
    """Hopeless: everything left to 1-ways; noisy: NOISY_SHARE more; rich: nothing more;
    lean: up to LEAN_SHARE more, monotone in between. Only the DP total and public sizes."""
    from privsynth.generator import aim

    sizes = (10,) * 11
    rho = 0.185
    left = rho * (1 - aim.AIM_SETTINGS.one_way_share)
    assert aim.one_way_plan(8000.0, sizes, rho, left) == []  # rich: flchain-like at epsilon 3
    assert aim.one_way_plan(30.0, sizes, rho, left) == [pytest.approx(left / rho)]  # hopeless
    tiny = 0.0025
    noisy = aim.one_way_plan(1200.0, (2,) * 11, tiny, tiny * 0.9)
    assert noisy == [pytest.approx(aim.AIM_SETTINGS.noisy_share)]
    extras = [sum(aim.one_way_plan(n, sizes, 0.0025, 0.0025 * 0.9)) for n in (80000.0, 40000.0, 30000.0, 15000.0)]
    assert extras[0] == 0 and extras[-1] == pytest.approx(aim.AIM_SETTINGS.lean_share)  # rich, then lean
    assert extras == sorted(extras) and 0 < extras[1] < extras[2] < aim.AIM_SETTINGS.lean_share


def test_further_one_way_passes_are_charged_and_combined_by_inverse_variance():
    from privsynth.generator.counts import ArrayCounts
    from privsynth.generator.measure import measure_one_ways
    from privsynth.privacy.accounting import Accountant

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, size=(5000, 3))
    acc = Accountant(2.0, 1e-6)
    seen = []

    def then(n_hat):
        seen.append(n_hat)
        return [0.3, 0.0]  # a zero pass is skipped

    ms, comps, small = measure_one_ways(ArrayCounts(codes, (4, 4, 4)), acc, ("a", "b", "c"), 0.1, None, 1.0, then=then)
    assert acc.rho_spent == pytest.approx(3 * 0.1 + 3 * 0.3)
    assert len(ms) == 6 and all(c.size == 4 for c in comps)  # nothing rare: no merge
    assert abs(seen[0] - 5000) < 200  # the DP total of the first pass
    assert small.codes.flags.f_contiguous and small.sizes == (4, 4, 4)
    sigmas = sorted({round(float(np.max(m.sigma)), 6) for m in ms})
    assert len(sigmas) == 2 and sigmas[0] < sigmas[1]  # the second pass is the more precise one


def test_counts_agree_in_row_and_column_major_order():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 5, size=(2000, 6)).astype(np.int8)
    sizes = (5,) * 6
    for attrs in [(0,), (1, 4), (0, 2, 5)]:
        np.testing.assert_array_equal(contingency(codes, attrs, sizes),
                                      contingency(np.asfortranarray(codes), attrs, sizes))


def test_marginal_query_on_a_long_tree_matches_brute_force():
    """Queries whose columns sit in distant cliques of a longer tree and of a forest."""
    rng = np.random.default_rng(7)
    sizes = (2, 3, 2, 3, 2, 2, 3, 2)
    cliques = [(0, 1, 2), (2, 3), (3, 4, 5), (5, 6), (1, 2, 3)]  # column 7 alone: a forest
    ms = [Measurement(c, rng.integers(1, 40, tuple(sizes[a] for a in c)).astype(float), 1.0) for c in cliques]
    ms.append(Measurement((7,), np.array([300.0, 700.0]), 1.0))
    est = mirror_descent(ms, sizes, iterations=60, total=1000)
    assert_queries_match_brute_force(est, sizes, [(0, 6), (0, 4, 6), (1, 5, 7), (0, 3, 6), (4, 7), (0, 1, 5, 6)])


def test_wide_aim_batches_selections_and_spends_the_budget():
    """More than ALL_TRIPLES_UP_TO columns: one scoring pass serves several selections, each
    charged; the model's cliques stay within the wide-table limit; all of rho is spent."""
    from privsynth.generator import aim
    from privsynth.generator.factor import cells
    from privsynth.generator.prior import PublicPrior
    from privsynth.generator.protocol import Problem
    from privsynth.privacy.accounting import Accountant

    rng = np.random.default_rng(3)
    n, d = 4000, aim.AIM_SETTINGS.all_triples_up_to + 4
    latent = rng.integers(0, 3, n)
    codes = np.column_stack([(latent + (rng.random(n) < 0.3) * rng.integers(0, 3, n)) % 3 for _ in range(d)])
    acc = Accountant(0.5, 1e-6)
    stages = []
    problem = Problem(codes, (3,) * d, tuple(f"c{j}" for j in range(d)), PublicPrior.none(d),
                      progress=lambda stage, done, total: stages.append(done))
    _, _, est = aim.fit_aim(problem, acc)
    selects = [c for c in acc.charges if c.purpose.startswith("select")]
    measured = [c for c in acc.charges if "-way" in c.purpose and not c.purpose.startswith("1-way")]
    assert len(selects) >= len(measured) > 0
    steps = [b - a for a, b in zip([0] + stages[1:-1], stages[2:])]
    assert max(steps) > 1  # several measurements per scoring pass
    assert acc.rho_spent == pytest.approx(acc.rho_total, rel=1e-6)
    assert max(cells(c, est.tree.sizes) for c in est.tree.cliques) <= aim.AIM_SETTINGS.clique_cells_max


@pytest.mark.parametrize("share", [0.5, 0.9])
def test_aim_spends_exactly_the_budget_when_the_structural_prior_takes_most_of_it(share):
    """The 1-way plan never asks for more than the structural prior leaves."""
    from privsynth.generator import aim
    from privsynth.generator.prior import PublicPrior
    from privsynth.generator.protocol import Problem
    from privsynth.privacy.accounting import Accountant

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 4, size=(300, 5))
    prior = PublicPrior({}, ((0, 1), (2, 3)), share, (1.0,) * 5, (False,) * 5)
    for rho in (0.001, 0.05, 2.0):  # hopeless, lean and rich first passes
        acc = Accountant(rho, 1e-6)
        aim.fit_aim(Problem(codes, (4,) * 5, tuple("abcde"), prior), acc)
        assert acc.rho_spent == pytest.approx(rho, rel=1e-6) and acc.rho_spent <= rho
