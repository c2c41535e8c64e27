"""The benchmark runs end to end with a tiny load and reports sane fields. No timing
is asserted: the figures belong in docs/performance.md, not in a test."""

from __future__ import annotations

import json

import pytest

from workers import cli


def test_lienthong_bench_runs_both_phases_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.run(["bench", "--dossiers", "5", "--steps", "2", "--concurrency", "5", "--warmup", "1",
                    "--json"])
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
    assert result["ratio"] > 0
    assert result["target_met"] == (result["ratio"] >= result["target"])
    assert result["database"] == "sqlite"
    assert result["machine"]["nproc"] >= 1
