"""The Grafana dashboards and Grafana-managed alerting of lienthong, as code.

Built with Grafana's own SDK (grafana-foundation-sdk) and written into monitoring/grafana/:

    python -m monitoring.grafana_build          # regenerate the files (commit the result)
    python -m monitoring.grafana_build --check  # exit 1 if a committed file differs

Generated: dashboards/lienthong-overview.json, dashboards/lienthong-sector.json and
provisioning/alerting/lienthong.yml. The datasource and dashboard-provider provisioning
YAML stay hand-written: the SDK has no builder for Grafana's provisioning files.
tests/monitoring/test_grafana_build.py checks the committed files equal this output.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from grafana_foundation_sdk.builders import (
    alerting,
    bargauge,
    common,
    dashboard,
    expr,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models.alerting import RelativeTimeRange
from grafana_foundation_sdk.models.alerting import Rule as RuleModel
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    GridPos,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.dashboard import DashboardLink as DashboardLinkModel
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

GRAFANA = Path(__file__).resolve().parent / "grafana"
DATASOURCE_UID = "lienthong-prometheus"  # provisioning/datasources/lienthong.yml
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
FOLDER = "lienthong"  # the folder of the dashboard provider and of the alert rules
OVERVIEW_UID = "lienthong-overview"
SECTOR_UID = "lienthong-sector"
TAGS = ["lienthong", "một cửa liên thông"]
SECTOR_LINK = "/d/lienthong-sector/lienthong-sector?var-sector=${__field.labels.sector}&${__url_time_range}"
ON_TIME_TARGET = 0.99  # Decision 766/QĐ-TTg
DAY = 86400

Steps = list[tuple[str, float | None]]
OVERDUE_RED: Steps = [("green", None), ("red", 1)]
OVERDUE_ORANGE: Steps = [("green", None), ("orange", 1)]
NEUTRAL: Steps = [("blue", None)]
ON_TIME: Steps = [("red", None), ("green", ON_TIME_TARGET)]
OLDEST: Steps = [("green", None), ("orange", 1), ("red", DAY)]


# --- queries and panels -------------------------------------------------------------------

def query(ref: str, promql: str, *, instant: bool = False, legend: str | None = None,
          interval: str | None = None, table_format: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().ref_id(ref).datasource(DATASOURCE).expr(promql)
    if instant:
        q = q.instant()
    if legend is not None:
        q = q.legend_format(legend)
    if interval is not None:
        q = q.interval(interval)
    if table_format:
        q = q.format(PromQueryFormat.TABLE)
    return q


def thresholds(steps: Steps) -> dashboard.ThresholdsConfig:
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(color=color, value=value) for color, value in steps])


def last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def sector_link() -> list[Builder[DashboardLinkModel]]:
    # Data links are DashboardLink builders in the SDK; Grafana reads their title and url.
    return [dashboard.DashboardLink("Open the sector drill-down").url(SECTOR_LINK)]


PanelT = TypeVar("PanelT", stat.Panel, bargauge.Panel, timeseries.Panel, table.Panel)


def place(panel: PanelT, panel_id: int, title: str, description: str, pos: tuple[int, int, int, int]) -> PanelT:
    h, w, x, y = pos
    placed: PanelT = (panel.id(panel_id).title(title).description(description).datasource(DATASOURCE)
            .grid_pos(GridPos(h=h, w=w, x=x, y=y)))
    return placed


def row(panel_id: int, title: str, y: int) -> dashboard.Row:
    return dashboard.Row(title).id(panel_id).collapsed(False).grid_pos(GridPos(h=1, w=24, x=0, y=y))


def stat_panel(panel_id: int, title: str, promql: str, pos: tuple[int, int, int, int], steps: Steps, *,
               description: str = "", unit: str = "none", decimals: int | None = None,
               legend: str | None = None, mappings: dict[str, str] | None = None) -> stat.Panel:
    panel = place(stat.Panel(), panel_id, title, description, pos)
    panel = (panel.with_target(query("A", promql, instant=True, legend=legend))
             .unit(unit).thresholds(thresholds(steps))
             .reduce_options(last_value()).color_mode(common_models.BigValueColorMode.BACKGROUND)
             .graph_mode(common_models.BigValueGraphMode.NONE).text_mode(common_models.BigValueTextMode.AUTO))
    if decimals is not None:
        panel = panel.decimals(decimals)
    if mappings:
        panel = panel.mappings([ValueMap(options={value: ValueMappingResult(text=text)
                                                  for value, text in mappings.items()})])
    return panel


def bar_gauge_panel(panel_id: int, title: str, promql: str, legend: str, pos: tuple[int, int, int, int],
                    steps: Steps, *, description: str = "", unit: str = "none",
                    drill_down: bool = False) -> bargauge.Panel:
    panel = place(bargauge.Panel(), panel_id, title, description, pos)
    panel = (panel.with_target(query("A", promql, instant=True, legend=legend))
             .unit(unit).thresholds(thresholds(steps))
             .orientation(common_models.VizOrientation.HORIZONTAL)
             .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
             .show_unfilled(True).reduce_options(last_value()))
    if drill_down:
        panel = panel.data_links(sector_link())
    return panel


def time_series_panel(panel_id: int, title: str, targets: list[Builder[variants.Dataquery]],
                      pos: tuple[int, int, int, int], *, description: str = "", unit: str = "none",
                      bars: bool = False, legend: str = "list", legend_right: bool = False,
                      legend_calcs: list[str] | None = None, target_steps: Steps | None = None,
                      decimals: int | None = None) -> timeseries.Panel:
    panel = place(timeseries.Panel(), panel_id, title, description, pos).targets(targets).unit(unit)
    if target_steps is not None:
        # The thresholds drawn as a line and an area: below the target is red.
        panel = (panel.thresholds(thresholds(target_steps))
                 .thresholds_style(common.GraphThresholdsStyleConfig()
                                   .mode(common_models.GraphThresholdsStyleMode.LINE_AND_AREA)))
    panel = (panel.draw_style(common_models.GraphDrawStyle.BARS if bars else common_models.GraphDrawStyle.LINE)
             .fill_opacity(60 if bars else 10).line_width(1 if bars else 2)
             .show_points(common_models.VisibilityMode.NEVER).span_nulls(True))
    if decimals is not None:
        panel = panel.decimals(decimals)
    if target_steps is not None:
        panel = panel.max(1)  # a ratio
    legend_options = (common.VizLegendOptions().show_legend(True)  # the SDK's default hides it
                      .display_mode(common_models.LegendDisplayMode(legend))
                      .placement(common_models.LegendPlacement.RIGHT if legend_right
                                 else common_models.LegendPlacement.BOTTOM))
    if legend_calcs:
        legend_options = legend_options.calcs(legend_calcs)
    # Grafana's tooltip sort "none" keeps the legend's order; the SDK's SortOrder enum lacks it.
    tooltip = common.VizTooltipOptions().mode(common_models.TooltipDisplayMode.MULTI).sort("none")  # type: ignore[arg-type]
    return panel.legend(legend_options).tooltip(tooltip)


def table_panel(panel_id: int, title: str, promql: list[str], columns: list[str],
                pos: tuple[int, int, int, int]) -> table.Panel:
    """One row per label value: instant queries A, B… merged, their values renamed to `columns`."""
    refs = [chr(ord("A") + i) for i in range(len(promql))]
    panel = place(table.Panel(), panel_id, title, "", pos)
    targets: list[Builder[variants.Dataquery]] = [
        query(ref, q, instant=True, table_format=True) for ref, q in zip(refs, promql, strict=True)]
    panel = (panel.targets(targets)
             .unit("none").show_header(True).cell_height(common_models.TableCellHeight.SM)
             .footer(common.TableFooterOptions().show(False)))
    rename = {f"Value #{ref}": column for ref, column in zip(refs, columns, strict=True)}
    return (panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))
            .with_transformation(DataTransformerConfig(id_val="organize", options={
                "excludeByName": {"Time": True}, "renameByName": rename})))


def board(uid: str, title: str, description: str, link_title: str, link_uid: str) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(TAGS)
            .timezone("Asia/Ho_Chi_Minh").readonly().version(1).refresh("1m").time("now-7d", "now")
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .link(dashboard.DashboardLink(link_title).type(DashboardLinkType.LINK)
                  .url(f"/d/{link_uid}/{link_uid}").icon("dashboard")))


# --- Biểu 06 (the province's periodic report) over the dashboard's range -------------------

RESOLVED = "lienthong_dossiers_resolved_total"  # activities/metrics.py: Decision 766's end time
ON_TIME_VERDICTS = '{verdict=~"early|on_time"}'


def resolved(by: str, matcher: str = "") -> str:
    return f"sum by ({by}) (increase({RESOLVED}{matcher}[$__range]))"


def on_time_rate(by: str) -> str:
    """Resolved early or on time over resolved, over the dashboard's range; a group that
    resolved nothing has no rate (not 0%)."""
    return f"{resolved(by, ON_TIME_VERDICTS)} / ({resolved(by)} > 0)"


# --- the dashboards -----------------------------------------------------------------------

def overview() -> dashboard.Dashboard:
    now = [
        stat_panel(2, "Overdue dossiers", "sum(lienthong_dossiers_overdue)", (4, 4, 0, 1), OVERDUE_RED,
                   description="Open dossiers past their due (exporter: flagged by the workflow, or processing "
                               "with the due instant passed)."),
        stat_panel(3, "Steps overdue at agencies", "sum(lienthong_steps_overdue)", (4, 4, 4, 1), OVERDUE_ORANGE),
        stat_panel(4, "Open dossiers", "sum(lienthong_dossiers_open)", (4, 4, 8, 1), NEUTRAL),
        stat_panel(5, "Awaiting the applicant's supplement", "sum(lienthong_dossiers_awaiting_supplement)",
                   (4, 4, 12, 1), NEUTRAL,
                   description="Clock stopped: the applicant's time is not the agencies' time."),
        stat_panel(6, "On-time rate, 30 days (target 99%)",
                   "sum(sector:lienthong_dossiers_finished_on_time:increase30d)"
                   " / sum(sector:lienthong_dossiers_finished:increase30d)", (4, 4, 16, 1), ON_TIME,
                   description="Decision 766/QĐ-TTg: dossiers finished early or on time over dossiers finished, "
                               "all sectors.", unit="percentunit", decimals=2),
        stat_panel(7, "Oldest overdue", "max(lienthong_oldest_overdue_age_seconds)", (4, 4, 20, 1), OLDEST,
                   unit="s"),
    ]
    report = [
        bar_gauge_panel(24, "On-time rate by level over the range", on_time_rate("level"), "{{level}}",
                        (8, 8, 0, 6), ON_TIME, unit="percentunit",
                        description="Biểu 06 columns (8)+(9) over (7): dossiers resolved early or on time over "
                                    "dossiers resolved in the dashboard's time range, at Decision 766's end time "
                                    "(status 9, else 10, else stopped). `lienthong report` gives the form itself."),
        bar_gauge_panel(25, "On-time rate by sector over the range", on_time_rate("sector"), "{{sector}}",
                        (8, 8, 8, 6), ON_TIME, unit="percentunit", drill_down=True,
                        description="Click a sector for its drill-down."),
        bar_gauge_panel(26, "Overdue now by level", "sort_desc(sum by (level) (lienthong_dossiers_overdue))",
                        "{{level}}", (8, 8, 16, 6), OVERDUE_RED,
                        description="Biểu 06 column (13) at this instant (exporter gauges)."),
        table_panel(27, "Biểu 06 by level and sector: resolved over the range, in progress now", [
            resolved("level, sector"), resolved("level, sector", '{verdict="early"}'),
            resolved("level, sector", '{verdict="on_time"}'), resolved("level, sector", '{verdict="late"}'),
            on_time_rate("level, sector"),
            "sum by (level, sector) (lienthong_dossiers_open)", "sum by (level, sector) (lienthong_dossiers_overdue)",
        ], ["(7) resolved", "(8) early", "(9) on time", "(10) late", "on-time rate", "(11) in progress",
            "(13) overdue"], (9, 24, 0, 14))
        .override_by_name("on-time rate", [DynamicConfigValue(id_val="unit", value="percentunit"),
                                           DynamicConfigValue(id_val="decimals", value=2)]),
    ]
    by_sector = [
        bar_gauge_panel(9, "Overdue dossiers by sector", "sort_desc(sum by (sector) (lienthong_dossiers_overdue))",
                        "{{sector}}", (10, 8, 0, 24), OVERDUE_RED,
                        description="Click a sector for its drill-down.", drill_down=True),
        bar_gauge_panel(10, "Steps overdue by agency", "topk(20, sum by (agency) (lienthong_steps_overdue) > 0)",
                        "{{agency}}", (10, 8, 8, 24), OVERDUE_ORANGE,
                        description="The agencies holding late steps (20 worst)."),
        bar_gauge_panel(11, "Oldest overdue by sector",
                        "sort_desc(max by (sector) (lienthong_oldest_overdue_age_seconds) > 0)", "{{sector}}",
                        (10, 8, 16, 24), [("orange", None), ("red", DAY)], unit="s", drill_down=True),
        time_series_panel(12, "Overdue dossiers by sector",
                          [query("A", "sum by (sector) (lienthong_dossiers_overdue)", legend="{{sector}}")],
                          (8, 12, 0, 34), legend="table", legend_right=True, legend_calcs=["lastNotNull", "max"]),
        time_series_panel(13, "Steps overdue by agency",
                          [query("A", "sum by (agency) (lienthong_steps_overdue) > 0", legend="{{agency}}")],
                          (8, 12, 12, 34), legend="table", legend_right=True, legend_calcs=["lastNotNull", "max"]),
    ]
    on_time = [
        time_series_panel(15, "On-time rate by sector vs the 99% target", [
            query("A", "sector:lienthong_dossiers_on_time:ratio_30d", legend="{{sector}} (30 days)"),
            query("B", "sector:lienthong_dossiers_on_time:ratio_1d", legend="{{sector}} (1 day)"),
        ], (9, 12, 0, 43), description="The red band is below the province's 99% target.", unit="percentunit",
            legend="table", legend_calcs=["lastNotNull", "min"], target_steps=ON_TIME, decimals=2),
        time_series_panel(16, "Received and finished per day", [
            query("A", "sum(increase(lienthong_dossiers_received_total[1d]))", legend="received", interval="1d"),
            query("B", "sum by (verdict) (increase(lienthong_dossiers_finished_total[1d]))",
                  legend="finished {{verdict}}", interval="1d"),
        ], (9, 12, 12, 43), bars=True, decimals=0),
        time_series_panel(17, "Deadline misses and escalations per hour", [
            query("A", "sum by (sector) (increase(lienthong_dossier_deadline_misses_total[1h]))",
                  legend="dossiers {{sector}}"),
            query("B", "sum by (agency) (increase(lienthong_step_deadline_misses_total[1h]))",
                  legend="steps {{agency}}"),
            query("C", "sum by (escalate_to) (increase(lienthong_escalations_total[1h]))",
                  legend="escalated to {{escalate_to}}"),
        ], (8, 12, 0, 52)),
        time_series_panel(18, "Working time to a result, 90th percentile by sector", [
            query("A", "histogram_quantile(0.9, sum by (sector, le) "
                       "(rate(lienthong_dossier_working_time_seconds_bucket[1d])))", legend="{{sector}}"),
        ], (8, 12, 12, 52), description="Working time on each dossier's calendar, without the applicant's "
                                        "supplement time.", unit="s"),
    ]
    health = [
        stat_panel(20, "Targets up", 'up{job=~"lienthong-exporter|lienthong-worker|lienthong-worker-sdk"}',
                   (5, 8, 0, 61), [("red", None), ("green", 1)], legend="{{job}} {{instance}}",
                   mappings={"0": "DOWN", "1": "UP"}),
        time_series_panel(21, "Exporter: store readable, read time and age of the numbers served", [
            query("A", "lienthong_exporter_store_up", legend="store up {{instance}}"),
            query("B", "lienthong_exporter_collect_duration_seconds", legend="read seconds {{instance}}"),
            query("C", "lienthong_exporter_store_age_seconds", legend="age of the numbers, seconds {{instance}}"),
        ], (5, 8, 8, 61)),
        time_series_panel(22, "Workflow-task wait and store-write time (p95, Temporal SDK)", [
            query("A", "histogram_quantile(0.95, sum by (task_queue, le) "
                       "(rate(temporal_workflow_task_schedule_to_start_latency_bucket[$__rate_interval])))",
                  legend="workflow tasks {{task_queue}}"),
            query("B", "histogram_quantile(0.95, sum by (task_queue, le) "
                       "(rate(temporal_local_activity_execution_latency_bucket[$__rate_interval])))",
                  legend="store writes {{task_queue}}"),
        ], (5, 8, 16, 61), unit="s"),
    ]
    # Issue 14: the applicant's turn (portal 5, 6), withdrawals (7), online dossiers at the desks (1).
    waiting = [
        stat_panel(30, "Awaiting the applicant's payment",
                   'sum(lienthong_dossiers_awaiting_applicant{reason="obligation"})', (4, 4, 0, 67), NEUTRAL,
                   description="Financial obligations (Decree 118 Art. 24, portal status 6): clocks stopped while "
                               "the applicant pays."),
        stat_panel(31, "Longest wait for a payment",
                   'max(lienthong_dossier_applicant_wait_oldest_seconds{reason="obligation"})', (4, 4, 4, 67),
                   [("green", None), ("orange", 30 * DAY)], unit="s",
                   description="Since the latest request of the dossier waiting longest (alert past 30 days)."),
        stat_panel(32, "Withdrawals not stopped", "sum(lienthong_dossiers_withdrawal_requested)", (4, 4, 8, 67),
                   [("green", None), ("red", 1)],
                   description="Portal status 7 is a moment: a withdrawal stops the dossier in the same write."),
        stat_panel(33, "Online dossiers waiting for receipt", "sum(lienthong_dossiers_awaiting_receipt)",
                   (4, 4, 12, 67), NEUTRAL, description="Portal status 1: submitted online, not yet received or "
                                                        "refused by a desk; their legal time has not started."),
        bar_gauge_panel(34, "Oldest receipt wait by desk, working time",
                        "topk(20, max by (desk) (lienthong_dossier_receipt_wait_oldest_working_seconds) > 0)",
                        "{{desk}}", (8, 8, 16, 67), [("green", None), ("orange", 4 * 3600), ("red", 8 * 3600)],
                        unit="s", description="In each dossier's calendar (alert past 8 working hours, a choice)."),
    ]
    return _with_rows(
        board(OVERVIEW_UID, "lienthong — overview",
              "Overdue dossiers by sector and agency, the Biểu 06 view (on-time rate by level and sector over the "
              "chosen range), on-time rate against the 99% target, volumes.",
              "Sector drill-down", SECTOR_UID),
        [(row(1, "Now", 0), now),
         (row(23, "Biểu 06: on time by level and sector over the chosen range, overdue now", 5), report),
         (row(8, "By sector and agency", 23), by_sector),
         (row(14, "On time (Decision 766) and volume", 42), on_time),
         (row(19, "Health of the monitoring and the workers", 60), health),
         (row(29, "Waiting for the applicant and for the desks", 66), waiting)])


def sector() -> dashboard.Dashboard:
    s = '{sector="$sector"}'
    s_and = 'sector="$sector"'
    now = [
        stat_panel(2, "Overdue dossiers", f"sum(lienthong_dossiers_overdue{s})", (4, 4, 0, 1), OVERDUE_RED),
        stat_panel(3, "Steps overdue", f"sum(lienthong_steps_overdue{s})", (4, 4, 4, 1), OVERDUE_ORANGE),
        stat_panel(4, "Open", f"sum(lienthong_dossiers_open{s})", (4, 4, 8, 1), NEUTRAL),
        stat_panel(5, "Awaiting supplement", f"sum(lienthong_dossiers_awaiting_supplement{s})", (4, 4, 12, 1),
                   NEUTRAL),
        stat_panel(6, "On time, 30 days (target 99%)", f"sector:lienthong_dossiers_on_time:ratio_30d{s}",
                   (4, 4, 16, 1), ON_TIME, unit="percentunit", decimals=2),
        stat_panel(7, "Oldest overdue", f"max(lienthong_oldest_overdue_age_seconds{s})", (4, 4, 20, 1), OLDEST,
                   unit="s"),
    ]
    finished_30d = f"sum by (procedure) (increase(lienthong_dossiers_finished_total{s}[30d]))"
    by_procedure = [
        table_panel(9, "Procedures: open, overdue, finished and on time (30 days)", [
            f"sum by (procedure) (lienthong_procedure_dossiers_open{s})",
            f"sum by (procedure) (lienthong_procedure_dossiers_overdue{s})",
            finished_30d,
            f'sum by (procedure) (increase(lienthong_dossiers_finished_total{{{s_and},verdict=~"early|on_time"}}'
            f"[30d])) / {finished_30d}",
        ], ["open", "overdue", "finished (30 d)", "on time (30 d)"], (9, 14, 0, 6)),
        time_series_panel(10, "Overdue by procedure", [
            query("A", f"sum by (procedure) (lienthong_procedure_dossiers_overdue{s})", legend="{{procedure}}"),
        ], (9, 10, 14, 6)),
        time_series_panel(11, "Received and finished per day by procedure", [
            query("A", f"sum by (procedure) (increase(lienthong_dossiers_received_total{s}[1d]))",
                  legend="received {{procedure}}", interval="1d"),
            query("B", f"sum by (procedure, verdict) (increase(lienthong_dossiers_finished_total{s}[1d]))",
                  legend="finished {{procedure}} {{verdict}}", interval="1d"),
        ], (8, 24, 0, 15), bars=True, decimals=0),
    ]
    by_agency = [
        table_panel(13, "Agencies: steps held, overdue, finished late, escalations and supplement requests (30 days)", [
            f"sum by (agency) (lienthong_steps_open{s})",
            f"sum by (agency) (lienthong_steps_overdue{s})",
            f'sum by (agency) (increase(lienthong_steps_finished_total{{{s_and},verdict="late"}}[30d]))',
            f"sum by (agency) (increase(lienthong_escalations_total{s}[30d]))",
            f"sum by (agency) (increase(lienthong_supplement_requests_total{s}[30d]))",
        ], ["held", "overdue", "finished late (30 d)", "escalations (30 d)", "supplement requests (30 d)"],
            (9, 14, 0, 24)),
        time_series_panel(14, "Steps overdue by agency", [
            query("A", f"sum by (agency) (lienthong_steps_overdue{s})", legend="{{agency}}"),
        ], (9, 10, 14, 24)),
    ]
    working_time = f"rate(lienthong_dossier_working_time_seconds_bucket{s}[1d])"
    on_time = [
        time_series_panel(16, "On-time rate vs the 99% target", [
            query("A", f"sector:lienthong_dossiers_on_time:ratio_30d{s}", legend="30 days"),
            query("B", f"sector:lienthong_dossiers_on_time:ratio_1d{s}", legend="1 day"),
        ], (8, 12, 0, 34), unit="percentunit", target_steps=ON_TIME, decimals=2),
        time_series_panel(17, "Working time to a result (median and 90th percentile)", [
            query("A", f"histogram_quantile(0.5, sum by (le) ({working_time}))", legend="median"),
            query("B", f"histogram_quantile(0.9, sum by (le) ({working_time}))", legend="90th percentile"),
        ], (8, 12, 12, 34), unit="s"),
        time_series_panel(18, "Overdue by level", [
            query("A", f"sum by (level) (lienthong_dossiers_overdue{s})", legend="{{level}}"),
        ], (7, 12, 0, 42)),
        time_series_panel(19, "Deadline misses per hour", [
            query("A", f"sum by (procedure) (increase(lienthong_dossier_deadline_misses_total{s}[1h]))",
                  legend="dossiers {{procedure}}"),
            query("B", f"sum by (agency) (increase(lienthong_step_deadline_misses_total{s}[1h]))",
                  legend="steps {{agency}}"),
        ], (7, 12, 12, 42)),
    ]
    variable = (dashboard.QueryVariable("sector").label("Sector").datasource(DATASOURCE)
                .query({"query": "label_values(lienthong_dossiers_open, sector)", "refId": "sector"})
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
                .multi(False).include_all(False))
    return _with_rows(
        board(SECTOR_UID, "lienthong — sector", "One sector: its procedures and the agencies holding its dossiers.",
              "Overview", OVERVIEW_UID).with_variable(variable),
        [(row(1, "$sector now", 0), now), (row(8, "By procedure", 5), by_procedure),
         (row(12, "By agency", 23), by_agency), (row(15, "On time and working time", 33), on_time)])


def _with_rows(builder: dashboard.Dashboard, rows: list[tuple[dashboard.Row, list[Any]]]) -> dashboard.Dashboard:
    # Expanded rows: their panels follow them in the dashboard's list, not inside the row.
    for row_builder, panels in rows:
        builder = builder.with_row(row_builder)
        for panel in panels:
            builder = builder.with_panel(panel)
    return builder


# --- Grafana-managed alerting -------------------------------------------------------------

LABELS = {"severity": "warning", "service": "lienthong", "team": "one-stop-monitoring"}
CONTACT_POINT = "lienthong-monitoring"


def alert_rule(uid: str, title: str, promql: str, fires_when: tuple[Literal["gt", "lt"], float], *, for_: str,
               annotations: dict[str, str], severity: str = "warning",
               no_data: Literal["Alerting", "NoData", "OK"] = "OK") -> Builder[RuleModel]:
    """A: the PromQL (instant), B: its last value, C: the threshold that fires (e.g. ("gt", 0))."""
    operator, value = fires_when
    threshold = (expr.TypeThreshold().ref_id("C").expression("B")
                 .conditions([expr.ExprTypeThresholdConditions().evaluator(
                     expr.ExprTypeThresholdConditionsEvaluator().type(operator).params([value]))]))
    return (alerting.Rule(title).uid(uid).condition("C")
            .queries([
                alerting.Query("A").datasource_uid(DATASOURCE_UID)
                .relative_time_range(RelativeTimeRange(from_val=600, to=0))
                .model(prometheus.Dataquery().ref_id("A").expr(promql).instant()),
                alerting.Query("B").datasource_uid("__expr__")
                .model(expr.TypeReduce().ref_id("B").expression("A").reducer("last")),
                alerting.Query("C").datasource_uid("__expr__").model(threshold),
            ])
            .no_data_state(no_data).exec_err_state("Error").for_val(for_)
            .labels({**LABELS, "severity": severity}).annotations(annotations))


def rule_groups() -> list[alerting.RuleGroup]:
    overdue: list[Builder[RuleModel]] = [
        alert_rule("lienthong-dossiers-overdue", "Overdue dossiers in a sector",
                   "sum by (sector) (lienthong_dossiers_overdue)", ("gt", 0), for_="10m", annotations={
                       "summary": "{{ $values.B }} overdue dossier(s) in sector {{ $labels.sector }}",
                       "runbook": "Dashboard 'lienthong — sector' for {{ $labels.sector }} shows the procedures and "
                                  "agencies holding them; the agency decides, or gives a new appointment with an "
                                  "apology (lienthong dossiers extend).",
                       "__dashboardUid__": SECTOR_UID, "__panelId__": "2"}),
        alert_rule("lienthong-step-overdue-agency", "Step overdue at an agency",
                   "sum by (sector, agency) (lienthong_steps_overdue)", ("gt", 0), for_="5m", annotations={
                       "summary": "{{ $values.B }} step(s) overdue at {{ $labels.agency }} "
                                  "(sector {{ $labels.sector }})",
                       "runbook": "lienthong inbox {{ $labels.agency }} lists its items most urgent first; call the "
                                  "agency's one-stop focal point."}),
        alert_rule("lienthong-on-time-rate", "On-time rate below 99% in a sector (30 days)",
                   "sector:lienthong_dossiers_on_time:ratio_30d", ("lt", ON_TIME_TARGET), for_="15m", annotations={
                       "summary": "On-time rate of sector {{ $labels.sector }} over 30 days is "
                                  "{{ humanizePercentage $values.B.Value }} (target 99%)",
                       "runbook": "Dashboard 'lienthong — sector' for {{ $labels.sector }}: late finishes by "
                                  "procedure, agencies with late steps."}),
    ]
    health: list[Builder[RuleModel]] = [
        # No exporter target at all is the same as down: no data alerts.
        alert_rule("lienthong-exporter-down", "lienthong exporter down", 'sum(up{job="lienthong-exporter"})',
                   ("lt", 1), for_="5m", severity="critical", no_data="Alerting", annotations={
                       "summary": "The lienthong exporter is down: overdue dossiers are not being counted",
                       "runbook": "Restart `lienthong exporter`; check it answers on :9464/metrics."}),
    ]
    return [alerting.RuleGroup(name).folder_uid(FOLDER).interval(60).rules(rules)
            for name, rules in (("lienthong-overdue", overdue), ("lienthong-health", health))]


def contact_points() -> list[alerting.ContactPoint]:
    return [alerting.ContactPoint().name(CONTACT_POINT).uid("lienthong-monitoring-email").type("email")
            .settings({"addresses": "${LIENTHONG_ALERT_EMAILS}", "singleEmail": True})
            .disable_resolve_message(False)]


def notification_policy() -> alerting.NotificationPolicy:
    critical = (alerting.NotificationPolicy().receiver(CONTACT_POINT)
                .object_matchers([["severity", "=", "critical"]]).repeat_interval("1h"))
    service = (alerting.NotificationPolicy().receiver(CONTACT_POINT)
               .object_matchers([["service", "=", "lienthong"]])
               .group_by(["alertname", "sector", "agency"]).group_wait("30s").group_interval("5m")
               .repeat_interval("4h").routes([critical]))
    return (alerting.NotificationPolicy().receiver(CONTACT_POINT).group_by(["grafana_folder", "alertname"])
            .routes([service]))


# --- Grafana's provisioning file format ---------------------------------------------------
# The SDK's alerting types are those of Grafana's provisioning HTTP API (folderUID, orgID and
# ruleGroup on each rule, matchers as objects); the files of provisioning/alerting/ put rules
# in groups with a folder title and matchers as [name, op, value]. Converted here, field by field.

ALERTING_HEADER = """\
# Grafana alerting provisioning: alert rules on the lienthong Prometheus, the contact
# point of the monitoring team, and the routing by `service`, `severity` and `sector`.
# Environment: LIENTHONG_ALERT_EMAILS (comma-separated addresses; needs Grafana's SMTP set up).
#
# The Prometheus rules (monitoring/prometheus/rules) are the source for Alertmanager;
# these are for teams that receive their alerts from Grafana. Labels are the same:
# severity, service=lienthong, sector (and agency for steps), plus team.
#
# GENERATED by `python -m monitoring.grafana_build` from monitoring/grafana_build.py:
# edit that, regenerate, commit both.
"""
ORG_ID = 1
# Kept from the hand-written file (what Grafana's rule editor saves); the SDK's Prometheus
# query type has no field for them. Instant queries do not depend on them.
EDITOR_DEFAULTS = {"lienthong-dossiers-overdue": {"intervalMs": 60000, "maxDataPoints": 43200}}


def _plain(obj: Any) -> Any:
    """The SDK object as Grafana's JSON (dicts, lists, strings, numbers)."""
    return json.loads(json.dumps(obj, cls=JSONEncoder))


def _flow(value: Any) -> Any:
    flowed = CommentedSeq(value) if isinstance(value, list) else CommentedMap(value)
    flowed.fa.set_flow_style()
    return flowed


def _duration(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _rule_file(rule: dict[str, Any]) -> dict[str, Any]:
    data = []
    for q in rule["data"]:
        model = dict(q["model"])
        if q["datasourceUid"] == "__expr__":
            model = {"refId": model["refId"], **{k: v for k, v in model.items() if k != "refId"}}
            if model["type"] == "reduce":
                model = _flow(model)  # one short line
        else:
            model = {"refId": model["refId"], "expr": model["expr"], "instant": model["instant"],
                     **EDITOR_DEFAULTS.get(rule["uid"], {})}
        entry: dict[str, Any] = {"refId": q["refId"]}
        if "relativeTimeRange" in q:
            entry["relativeTimeRange"] = _flow(q["relativeTimeRange"])
        data.append({**entry, "datasourceUid": q["datasourceUid"], "model": model})
    return {"uid": rule["uid"], "title": rule["title"], "condition": rule["condition"], "data": data,
            "noDataState": rule["noDataState"], "execErrState": rule["execErrState"], "for": rule["for"],
            "labels": rule["labels"], "annotations": rule["annotations"]}


def _policy_file(policy: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"receiver": policy["receiver"]}
    if "object_matchers" in policy:
        out["object_matchers"] = [_flow(matcher) for matcher in policy["object_matchers"]]
    if "group_by" in policy:
        out["group_by"] = _flow(policy["group_by"])
    out.update({k: policy[k] for k in ("group_wait", "group_interval", "repeat_interval") if k in policy})
    if "routes" in policy:
        out["routes"] = [_policy_file(route) for route in policy["routes"]]
    return out


def alerting_file() -> dict[str, Any]:
    groups = [_plain(group.build()) for group in rule_groups()]
    points = [_plain(point.build()) for point in contact_points()]
    policy = _policy_file(_plain(notification_policy().build()))
    # The contact point's receivers are grouped by name, as Grafana's UI shows them.
    return {
        "apiVersion": 1,
        "groups": [{"orgId": ORG_ID, "name": g["title"], "folder": g["folderUid"], "interval": _duration(g["interval"]),
                    "rules": [_rule_file(r) for r in g["rules"]]} for g in groups],
        "contactPoints": [{"orgId": ORG_ID, "name": name, "receivers": [
            {"uid": p["uid"], "type": p["type"], "settings": p["settings"],
             "disableResolveMessage": p["disableResolveMessage"]} for p in points if p["name"] == name]}
            for name in dict.fromkeys(p["name"] for p in points)],
        "policies": [{"orgId": ORG_ID, **policy}],
    }


# --- writing ------------------------------------------------------------------------------

def _yaml_text(doc: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # no folded lines: one annotation, one line
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _json_text(obj: Any) -> str:
    return json.dumps(_plain(obj), indent=2, ensure_ascii=False) + "\n"  # "—", "một cửa" as they are


def render() -> dict[Path, str]:
    """Every generated file (path relative to monitoring/grafana/) and its text."""
    files = {Path("dashboards") / f"{uid}.json": _json_text(builder.build())
             for uid, builder in ((OVERVIEW_UID, overview()), (SECTOR_UID, sector()))}
    files[Path("provisioning") / "alerting" / "lienthong.yml"] = ALERTING_HEADER + _yaml_text(alerting_file())
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.grafana_build", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=GRAFANA, help="the grafana/ folder (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in render().items():
        path = args.output / relative
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'differs' if args.check else 'wrote'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
