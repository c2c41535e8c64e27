"""One rule picks a procedure version, for the files of a folder and for the deployed registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from definitions.versions import choose_version, newest_in_effect


@dataclass(frozen=True)
class Version:
    version: int
    effective_from: date | None


V1, V2, V3 = Version(1, None), Version(2, date(2026, 7, 1)), Version(3, date(2027, 1, 1))


def test_the_newest_version_in_effect_is_chosen() -> None:
    assert newest_in_effect([V3, V1, V2], date(2026, 6, 30)) == V1
    assert newest_in_effect([V3, V1, V2], date(2026, 7, 1)) == V2  # from its first day
    assert newest_in_effect([V3, V1, V2], date(2030, 1, 1)) == V3
    assert newest_in_effect([V2, V3], date(2026, 1, 1)) is None
    assert choose_version("x", [V2, V1], None, date(2026, 8, 1)) == V2
    assert choose_version("x", [V2, V1], 1, date(2026, 8, 1)) == V1  # exactly, in effect or not


def test_refusals_name_the_versions_there_are() -> None:
    with pytest.raises(LookupError, match=r"^procedure x has no version 4: known versions are 2, 3$"):
        choose_version("x", [V3, V2], "4", date(2026, 1, 1))
    with pytest.raises(LookupError, match=r"^procedure x has no deployed version 4: deployed versions are 2, 3$"):
        choose_version("x", [V3, V2], 4, date(2026, 1, 1), which="deployed ")
    with pytest.raises(LookupError, match=r"^procedure x has no deployed version in effect on 2026-01-01 "
                                          r"\(v2 from 2026-07-01, v3 from 2027-01-01\)$"):
        choose_version("x", [V3, V2], None, date(2026, 1, 1), which="deployed ")
