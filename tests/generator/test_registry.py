"""Adding a generator is one module and one ``register`` call: a toy one, registered here,
is offered by the CLI and passes the contract suite."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from privsynth.generator import registry
from privsynth.generator.constraint import compress_masks
from privsynth.generator.estimate import mirror_descent
from privsynth.generator.measure import SAFETY, measure_one_ways
from privsynth.generator.protocol import Fitted, Problem
from privsynth.privacy.accounting import Accountant
from tests.generator import test_contract as contract


class Independent:
    """Every column on its own: all rho on the 1-way marginals."""

    name = "toy-independent"
    summary = "independent 1-way marginals (a test's toy)"

    def fit(self, problem: Problem, accountant: Accountant) -> Fitted:
        rho = problem.prior.rho_one_way(accountant.rho_remaining) * SAFETY
        measurements, compressions, _ = measure_one_ways(problem.data, accountant, problem.names,
                                                         rho, problem.prior.compressible(None), threshold=1.0)
        sizes = tuple(c.size for c in compressions)
        estimate = mirror_descent(measurements, sizes, iterations=problem.iterations, max_cells=problem.max_cells,
                                  masks=compress_masks(problem.prior.masks, compressions))
        return Fitted(measurements, compressions, estimate)


@pytest.fixture
def toy():
    registry.register(Independent())
    yield "toy-independent"
    registry.unregister("toy-independent")


def test_a_registered_generator_is_offered_by_the_cli(toy):
    from privsynth.cli import main

    runner = CliRunner()
    shown = runner.invoke(main, ["synthesize", "--help"])
    assert shown.exit_code == 0 and "toy-independent" in shown.output
    refused = runner.invoke(main, ["synthesize", "x.csv", "--schema", "s.yaml", "--epsilon", "1",
                                   "--out", "o", "--method", "no-such"])
    assert refused.exit_code == 2 and "toy-independent" in refused.output


def test_a_registered_generator_passes_the_contract(toy, tmp_path):
    for epsilon in (0.3, 3.0):
        contract.check_spends_the_budget_and_returns_self(toy, epsilon)
    contract.check_domains_are_the_public_ones_and_rules_hold(toy)
    contract.check_save_load_round_trip(toy, tmp_path)
    for columns in (1, 2):
        contract.check_tiny_schemas_fit(toy, columns)


def test_the_contract_catches_a_generator_that_does_not_charge_what_it_measures():
    """The contract can fail: a generator whose measurements bypass the accountant."""

    class Uncharged(Independent):
        name = "toy-uncharged"

        def fit(self, problem: Problem, accountant: Accountant) -> Fitted:
            return super().fit(problem, Accountant(accountant.rho_total, accountant.delta))  # a private ledger

    registry.register(Uncharged())
    try:
        with pytest.raises(AssertionError):
            contract.check_spends_the_budget_and_returns_self("toy-uncharged", 1.0)
    finally:
        registry.unregister("toy-uncharged")


def test_names_must_be_new_and_well_formed():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(type("Other", (Independent,), {"name": "aim"})())
    with pytest.raises(ValueError, match="lower-case"):
        registry.register(type("Bad", (Independent,), {"name": "Bad Name"})())
