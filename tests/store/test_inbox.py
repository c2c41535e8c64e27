"""Agencies' inboxes: idempotent adds and removes, most urgent first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.inbox import InboxItem, add_item, list_items, remove_item
from store.models import InboxItemRow
from tests.store.builders import T0, make_routing


def test_add_is_idempotent_and_a_reroute_moves_the_due(sessions: sessionmaker[Session]) -> None:
    routing = make_routing()
    with sessions.begin() as session:
        assert add_item(session, routing) is True
        assert add_item(session, routing) is False
    resumed = make_routing(due_at=routing.due_at + timedelta(days=3), reason="resumed")
    with sessions.begin() as session:
        assert add_item(session, resumed) is False
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(InboxItemRow)) == 1
        [item] = list_items(session, "vpdk-tinh", now=T0)
    assert item == InboxItem(
        agency="vpdk-tinh", dossier_id="HS-2026-000001", step_id="tham-dinh", step_name="Thẩm định hồ sơ",
        procedure_code="1.012756", procedure_version=1, sector="G13-TN01", assigned_at=T0,
        due_at=resumed.due_at, overdue=False,
    )


def test_a_withdrawn_routing_is_not_added(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="remove_item"), sessions.begin() as session:
        add_item(session, make_routing(reason="withdrawn"))


def test_remove_is_idempotent(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        add_item(session, make_routing())
    with sessions.begin() as session:
        assert remove_item(session, "vpdk-tinh", "HS-2026-000001", "tham-dinh") is True
        assert remove_item(session, "vpdk-tinh", "HS-2026-000001", "tham-dinh") is False
        assert list_items(session, "vpdk-tinh", now=T0) == []


def test_list_is_one_agency_most_urgent_first_with_overdue(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for n, days in enumerate([5, 1, 3]):
            add_item(session, make_routing(dossier_id=f"HS-{n}", due_at=T0 + timedelta(days=days)))
        add_item(session, make_routing(dossier_id="HS-other", agency="thue-co-so"))
    now = T0 + timedelta(days=2)
    with sessions() as session:
        items = list_items(session, "vpdk-tinh", now=now)
        page = list_items(session, "vpdk-tinh", 1, 1, now=now)
    assert [(i.dossier_id, i.overdue) for i in items] == [("HS-1", True), ("HS-2", False), ("HS-0", False)]
    assert [i.dossier_id for i in page] == ["HS-2"]
    assert all(i.due_at.tzinfo is not None for i in items)
