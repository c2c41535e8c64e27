"""The benchmark runs end to end with a tiny load and reports sane fields. No timing
is asserted: the figures belong in docs/performance.md, not in a test."""

from __future__ import annotations

import json

import pytest

from workers import cli


def test_lienthong_bench_runs_both_phases_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.run(["bench", "--dossiers", "5", "--steps", "2", "--concurrency", "5", "--warmup", "1",
                    "--open", "3", "--sandbox", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out)  # stdout is the JSON and nothing else (the dev server's banner goes to stderr)

    for kind in ("lienthong", "raw"):
        phase = result[kind]
        assert phase["completed"] == 5 and phase["failed"] == 0 and not phase["errors"], phase
        assert phase["dossiers_per_s"] > 0 and phase["steps_per_s"] == pytest.approx(2 * phase["dossiers_per_s"],
                                                                                     rel=0.01)
        # One hand-over sample per completed step that has a next step: 5 × (2 - 1).
        assert phase["handover_samples"] == 5
        assert 0 < phase["handover_p50_ms"] <= phase["handover_p99_ms"]
        assert 0 < phase["update_p50_ms"] <= phase["update_p99_ms"]
        assert phase["worker_peak_rss_mb"] > 10
        assert phase["worker_peak_rss_mb_life"] >= phase["worker_peak_rss_mb"]
        assert phase["workflow_sandbox"] == "1"  # --sandbox; the raw worker is always sandboxed

        # Histories of all 5 timed dossiers, fetched from the server.
        assert phase["history_sampled"] == 5
        for what in ("events", "bytes"):
            p50, top = phase[f"history_{what}_p50"], phase[f"history_{what}_max"]
            assert isinstance(p50, int) and isinstance(top, int) and 0 < p50 <= top, phase
            assert 0 < phase[f"history_{what}_per_dossier"] <= top
        counts = phase["history_counts_per_dossier"]
        assert counts["workflow_tasks"] >= 2 and counts["workflow_tasks_failed"] == 0
        assert counts["updates_accepted"] == 2  # one completion per step
        assert phase["history_bytes_per_dossier"] > phase["history_events_per_dossier"]

    raw, lienthong = result["raw"], result["lienthong"]
    raw_counts, counts = raw["history_counts_per_dossier"], lienthong["history_counts_per_dossier"]
    assert raw_counts["activities"] == 2  # one hand-over per step, nothing else
    assert raw_counts["local_activity_markers"] == raw_counts["timers_started"] == 0
    assert raw_counts["search_attribute_upserts"] == 0
    # The lean shape: one store write (local activity) per activation — receipt with the
    # first hand-over, then each completion with the next hand-over or the finish — no
    # regular activity (the bench agencies have no webhooks), one lazy due timer.
    assert counts["local_activity_markers"] == 3 and counts["activities"] == 0
    assert counts["timers_started"] == 1 and counts["search_attribute_upserts"] >= 1

    # --open 3: lienthong only; all routed, RSS read, then terminated.
    assert lienthong["open_dossiers"] == 3 and lienthong["open_routed"] == 3
    assert lienthong["worker_peak_rss_mb_with_open"] >= lienthong["worker_rss_mb_with_open"] > 10
    assert lienthong["open_start_s"] >= 0 and lienthong["open_cleanup_s"] >= 0
    assert raw["open_dossiers"] == 0 and raw["worker_peak_rss_mb_with_open"] is None
    assert result["options"]["open"] == 3 and result["options"]["sandbox"] is True

    assert result["ratio"] > 0
    assert result["target_met"] == (result["ratio"] >= result["target"])
    assert result["handover_p99_ratio"] > 0
    assert result["history_events_ratio"] > 0 and result["history_bytes_ratio"] > 0
    targets = result["targets"]
    assert set(targets) == {"throughput_ratio", "history_events_ratio", "history_bytes_ratio",
                            "handover_p99_ratio", "worker_peak_rss_mb_with_open"}
    assert targets["throughput_ratio"]["met"] == result["target_met"]
    assert targets["worker_peak_rss_mb_with_open"]["value"] == lienthong["worker_peak_rss_mb_with_open"]
    for name, target in targets.items():
        at_least = name == "throughput_ratio"
        assert target["met"] == (target["value"] >= target["limit"] if at_least else target["value"] <= target["limit"])
    assert result["database"] == "sqlite"
    assert result["machine"]["nproc"] >= 1


def test_history_figures_count_event_kinds() -> None:
    """Events, serialized size and the kinds counted, on a hand-made history (no server)."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.history.v1 import History, HistoryEvent, MarkerRecordedEventAttributes

    from bench.run import HISTORY_COUNTS, history_figures, spread_sample, summarize_histories

    def event(kind: int, marker: str | None = None) -> HistoryEvent:
        if marker is None:
            return HistoryEvent(event_type=kind)  # type: ignore[arg-type]
        return HistoryEvent(event_type=kind,  # type: ignore[arg-type]
                            marker_recorded_event_attributes=MarkerRecordedEventAttributes(marker_name=marker))

    history = History(events=[
        event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
        event(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED), event(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        event(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT),
        event(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        event(EventType.EVENT_TYPE_MARKER_RECORDED, "core_local_activity"),
        event(EventType.EVENT_TYPE_MARKER_RECORDED, "core_patch"),
        event(EventType.EVENT_TYPE_TIMER_STARTED),
        event(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
        event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED),
    ])
    events, size, counts = history_figures(history)
    assert events == 10 and size == history.ByteSize() > 0
    assert counts == {"workflow_tasks": 2, "workflow_tasks_failed": 1, "activities": 1, "local_activity_markers": 1,
                      "other_markers": 1, "timers_started": 1, "search_attribute_upserts": 1,
                      "updates_accepted": 1}
    assert list(counts) == HISTORY_COUNTS

    summary = summarize_histories([history, History(events=list(history.events)[:4])])
    assert summary["history_sampled"] == 2
    assert summary["history_events_per_dossier"] == 7.0 and summary["history_events_max"] == 10
    assert summary["history_events_p50"] == 4  # nearest rank
    assert summary["history_counts_per_dossier"]["workflow_tasks"] == 2.0
    assert summarize_histories([]) == {}

    assert spread_sample([str(i) for i in range(10)], 3) == ["0", "3", "6"]
    assert spread_sample(["a", "b"], 50) == ["a", "b"] and spread_sample(["a", "b"], 0) == ["a", "b"]
