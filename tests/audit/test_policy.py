"""Policy files: defaults, clear errors with file and line, weakenings recorded."""

from __future__ import annotations

import pytest

from privsynth.audit import Policy, load_policy
from privsynth.errors import PolicyError


def test_defaults_and_example_file_agree():
    from tests.conftest import ROOT

    example = load_policy(ROOT / "examples" / "policy.yaml")
    assert {k: v for k, v in example.as_dict().items() if k != "source"} == \
        {k: v for k, v in Policy().as_dict().items() if k != "source"}


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("mia_auc_maxx: 0.6\n", ":1: field 'mia_auc_maxx': unknown threshold. Did you mean 'mia_auc_max'",
                 id="typo"),
    pytest.param("dcr_share_max: 0.52\ntail_p: high\n", ":2: field 'tail_p': must be a number", id="not-a-number"),
    pytest.param("holdout_fraction: 1.5\n",
                 ":1: field 'holdout_fraction': 'holdout_fraction' must be between 0.05 and 0.5", id="out-of-range"),
    pytest.param("exact_match_p: 0.01\ntail_p: .nan\n", ":2: field 'tail_p': 'tail_p' must be a finite number",
                 id="not-finite"),
    pytest.param("max_attempts: 2.5\n", "'max_attempts' must be a whole number", id="not-whole"),
    pytest.param("min_holdout: 0\n", "'min_holdout' must be between 100", id="no-floor"),
    pytest.param("- 1\n", "a policy must be a mapping", id="not-a-mapping"),
])
def test_bad_policy_files(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_policy(path)


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("total_delta: 1e-6\n")  # YAML 1.1 reads this as a string
    assert load_policy(path).total_delta == 1e-6


def test_loosening_is_recorded_and_tightening_is_not(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("mia_auc_max: 0.6\ntail_p: 0.05\nmin_holdout: 200\n")  # tail_p 0.05 is stricter
    assert load_policy(path).weakened() == ["min_holdout: 200 (default 1000)", "mia_auc_max: 0.6 (default 0.55)"]
