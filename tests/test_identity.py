"""Fresh identities: never a real SSN, consistent with gender and state, reproducible."""

from __future__ import annotations

import re

from privsynth.identity import IdentityFactory


def test_ssns_are_never_issued_numbers_and_phones_are_fictional():
    factory = IdentityFactory(seed=4)
    people = [factory.make("female", "MA") for _ in range(500)]
    for p in people:
        area, group, serial = p.ssn.split("-")
        assert 900 <= int(area) <= 999 and group == "00" and len(serial) == 4
        assert re.fullmatch(r"555-01\d\d", p.phone)
        assert p.state == "MA" and p.postal_code[:1] in "0"  # MA ZIP codes start with 01/02
    assert len({p.mrn for p in people}) == 500
    assert len({p.id for p in people}) == 500


def test_same_seed_same_people_and_no_state_when_unknown():
    a = [IdentityFactory(seed=1).make("male", None) for _ in range(1)][0]
    b = [IdentityFactory(seed=1).make("male", None) for _ in range(1)][0]
    assert a == b and a.state is None
