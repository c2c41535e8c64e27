"""`lienthong portal status | parked | retry` on a store holding outbox rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from activities.portal_payload import PortalPayload
from store import portal_outbox, projection
from tests.store.builders import portal_journey
from tests.workers.conftest import Cli


def queue(cli: Cli, dossier_id: str, *, ago: timedelta) -> None:
    with cli.sessions().begin() as session:
        for change in portal_journey(dossier_id)[:2]:
            projection.write_changes(session, change, portal=PortalPayload(), now=datetime.now(UTC) - ago)


def rows(cli: Cli, dossier_id: str) -> dict[int, portal_outbox.PortalOutboxRow]:
    with cli.sessions()() as session:
        return {row.seq: row for row in portal_outbox.list_rows(session, dossier_id)}


def test_status_says_where_changes_go_what_waits_and_why(cli: Cli, monkeypatch) -> None:
    assert cli.ok("portal", "status").splitlines() == [
        "portal: off (LIENTHONG_PORTAL_URL is not set: nothing is queued or sent)", "waiting: nothing", "parked: 0"]
    queue(cli, "HS-A", ago=timedelta(minutes=20))
    with cli.sessions().begin() as session:
        portal_outbox.record_failure(session, rows(cli, "HS-A")[1].id, "network: ConnectError: refused")
    monkeypatch.setenv("LIENTHONG_PORTAL_URL", "https://dichvucong.example.invalid/api/dongbo")
    out = cli.ok("portal", "status").splitlines()
    assert out[0] == "portal: https://dichvucong.example.invalid/api/dongbo"
    assert out[1].startswith("waiting: 4 change(s); the oldest recorded ") and out[1].endswith(" s ago)")
    assert out[2] == "last failure: HS-A:1 after 1 attempt(s): network: ConnectError: refused"
    shown = json.loads(cli.ok("portal", "status", "--json"))
    assert (shown["pending"], shown["parked"], shown["last_error"]["seq"]) == (4, 0, 1)
    assert 20 * 60 <= shown["lag_seconds"] < 60 * 60


def test_parked_changes_are_listed_and_sent_again_on_request(cli: Cli) -> None:
    queue(cli, "HS-A", ago=timedelta(minutes=5))
    queue(cli, "HS-B", ago=timedelta(minutes=5))
    now = datetime.now(UTC)
    with cli.sessions().begin() as session:
        for dossier, seq in (("HS-A", 5), ("HS-B", 1)):
            portal_outbox.park(session, rows(cli, dossier)[seq].id, now, "HTTP 422: MaTTHC không tồn tại")
    listed = cli.ok("portal", "parked").splitlines()
    assert listed[0].split() == ["DOSSIER", "SEQ", "KIND", "STATUS", "PARKED", "ATTEMPTS", "PORTAL", "SAID"]
    assert [line.split()[:3] for line in listed[1:]] == [["HS-A", "5", "step_assigned"], ["HS-B", "1", "received"]]
    assert "MaTTHC không tồn tại" in listed[1]
    assert [p["dossier_id"] for p in json.loads(cli.ok("portal", "parked", "HS-B", "--json"))] == ["HS-B"]
    assert "parked: 2" in cli.ok("portal", "status")

    assert cli.refused("portal", "retry", "HS-C") == (
        "no parked change of HS-C to send again (`lienthong portal parked` lists them; a change a later "
        "delivered one superseded is not sent again)")
    assert cli.ok("portal", "retry", "HS-A") == "HS-A:5 (step_assigned) will be sent again\n"
    assert rows(cli, "HS-A")[5].parked_at is None and rows(cli, "HS-B")[1].parked_at is not None
    assert cli.ok("portal", "retry") == "HS-B:1 (received) will be sent again\n"
    assert cli.ok("portal", "parked") == "no parked change\n"
    assert cli.ok("portal", "retry") == "no parked change\n"
