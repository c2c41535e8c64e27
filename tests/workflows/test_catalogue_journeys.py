"""Every shipped procedure, end to end on the time-skipping server: a dossier with
data that makes its `when` steps run, each step completed by the agency its
definition names, finished completed and on time.

Parametrized over definitions/procedures/*.yaml: a new procedure file is covered
without touching this test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.catalogue import (
    complete_steps,
    expected_agencies,
    journey_data,
    shipped_files,
    shipped_snapshot,
)
from tests.workflows.harness import finished, running_worker, start_dossier

FILES = shipped_files()


def test_every_shipped_procedure_has_a_journey() -> None:
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_happy_path_of_a_shipped_procedure(time_skipping_env, path: Path) -> None:
    env = time_skipping_env
    snap = shipped_snapshot(path)
    procedure = snap.procedure
    data = journey_data(procedure)
    agencies = expected_agencies(procedure, data)
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, snap, data=data)
        await complete_steps(handle, agencies)
        result = await finished(handle)

    assert result.status == "completed" and result.portal_status == 10
    assert result.procedure_code == procedure.code and result.sector == procedure.sector
    assert result.verdict in ("early", "on_time") and not result.overdue
    assert [s.id for s in result.steps] == list(agencies)
    for st in result.steps:
        agency = agencies[st.id]
        if agency is None:
            assert st.status == "skipped", st.id
            continue
        assert st.status == "completed", st.id
        assert st.agency == agency, st.id
        assert st.outcome == "approved"
        assert st.verdict in ("early", "on_time") and not st.overdue and st.escalations == 0, st.id
    # The data made at least one conditional step run where the procedure has any.
    conditional = [s for s in procedure.iter_steps() if s.when is not None]
    if conditional:
        assert any(agencies[s.id] is not None for s in conditional)
