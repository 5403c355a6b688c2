"""Fresh direct identifiers from Faker, consistent with the synthetic row.

Direct identifiers are never read from the input and never learned. Every name, MRN,
SSN, phone number and address here is drawn from a Faker instance seeded for this run,
with the synthetic gender (for first names) and state (for city and ZIP code).
SSNs use areas 900-999 with group 00, which the US Social Security Administration never
issues, and phone numbers use the 555-01xx range reserved for fiction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from faker import Faker


@dataclass(frozen=True)
class Identity:
    """One synthetic person's direct identifiers."""

    id: str
    given: str
    family: str
    mrn: str
    ssn: str
    phone: str
    line: str
    city: str
    state: str | None
    postal_code: str
    email: str

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"


class IdentityFactory:
    """Makes identities from a seeded Faker and a seeded numpy generator."""

    def __init__(self, seed: int, locale: str = "en_US", block: tuple[int, int] = (0, 1)) -> None:
        self._fake = Faker(locale)
        self._fake.seed_instance(seed)
        self._rng = np.random.default_rng(seed)
        self._used_mrn: set[str] = set()
        # output written in parts (privsynth.engine.write): part k of K draws MRNs congruent
        # to k modulo K, so no two parts can give two patients one MRN
        self._part, self._parts = block

    def new_id(self) -> str:
        """A random UUID (version 4) drawn from the seeded generator."""
        return str(uuid.UUID(bytes=self._rng.bytes(16), version=4))

    def make(self, gender: str | None, state: str | None) -> Identity:
        fake = self._fake
        if gender == "female":
            given = fake.first_name_female()
        elif gender == "male":
            given = fake.first_name_male()
        else:
            given = fake.first_name_nonbinary()
        family = fake.last_name()
        while True:
            slot = int(self._rng.integers(0, (9 * 10**7 - 1 - self._part) // self._parts + 1))
            mrn = f"SYN{10**7 + slot * self._parts + self._part}"
            if mrn not in self._used_mrn:
                self._used_mrn.add(mrn)
                break
        # area 900-999 and group 00 are never issued, so this is no one's SSN (and differs
        # from Synthea's 999-NN-NNNN test numbers, whose group is never 00)
        ssn = f"{self._rng.integers(900, 1000)}-00-{self._rng.integers(1, 10000):04d}"
        phone = f"555-01{self._rng.integers(0, 100):02d}"
        usps = state if state is not None and len(state) == 2 and state.isupper() else None
        try:
            postal = fake.zipcode_in_state(usps) if usps else fake.zipcode()
        except (AttributeError, KeyError, ValueError):
            postal = fake.zipcode()
        return Identity(
            id=self.new_id(),
            given=given,
            family=family,
            mrn=mrn,
            ssn=ssn,
            phone=phone,
            line=fake.street_address(),
            city=fake.city(),
            state=usps,
            postal_code=postal,
            email=f"{given}.{family}.{self._rng.integers(100, 1000)}@example.org".lower(),
        )
