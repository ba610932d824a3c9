"""Investigator commands: status (with its figure), database lock, exports. Everything
shown here is blinded; only ``export --unblinded`` (after lock, custodians only) writes an
arm, and only into the file."""

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trialkit.cli.context import YES_HELP, ask_secret, cli, confirm_irreversible
from trialkit.domain.errors import InvalidInput, write_failed
from trialkit.domain.site_time import shown

if TYPE_CHECKING:
    from trialkit.services.exports.datasets import ExportResult
    from trialkit.services.exports.status import TrialStatus


def _svg_path(text: str) -> Path:
    path = Path(text).expanduser()
    if path.suffix.lower() != ".svg":
        raise InvalidInput(f"--figure {text!r}: give a file name ending in .svg")
    if path.is_dir():
        raise InvalidInput(f"--figure {text!r} is a folder: give a file name ending in .svg")
    if not path.parent.is_dir():
        raise InvalidInput(f"--figure {text!r}: folder {path.parent} does not exist")
    return path


def _write_text(path: Path, content: str) -> None:
    """Write atomically (the usual file permissions); a failure is one clear line."""
    import secrets  # here, not at import: hashlib's OpenSSL load slows every --help

    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        partial.write_text(content, encoding="utf-8")
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise write_failed(err, path) from None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


# --- status ------------------------------------------------------------------------------------


def _status_doc(st: "TrialStatus") -> dict[str, Any]:
    from dataclasses import asdict

    c = st.consort
    return {
        "trial": st.trial_code,
        "as_of": st.as_of.isoformat(),
        "locked_at": st.locked_at.isoformat() if st.locked_at else None,
        "locked_by": st.locked_by,
        "target": st.target,
        "sites": [asdict(e) | {"percent_of_target": e.percent_of_target} for e in st.sites],
        "strata": [{k: v for k, v in asdict(e).items() if k != "target"} for e in st.strata],
        "envelopes": None if st.envelopes is None else [
            {"stratum": u.stratum, "sealed": u.sealed, "used": u.used, "left": u.left}
            for u in st.envelopes],
        "completeness": [asdict(w) | {"percent": w.percent} for w in st.completeness],
        "overdue": [asdict(o) | {"last_recorded": o.last_recorded.isoformat()
                                 if o.last_recorded else None} for o in st.overdue],
        "consort": asdict(c) | {"ineligible_by_criterion": dict(c.ineligible_by_criterion)},
        "enrolment_curve": [{"date": p.day.isoformat(), "total": p.total,
                             "by_site": dict(p.by_site)} for p in st.curve],
    }


def status_text(st: "TrialStatus") -> str:
    locked = (f"database LOCKED on {shown(st.locked_at)} by {st.locked_by}"
              if st.locked_at else "database open")
    lines = [f"{st.trial_code} status on {st.as_of} ({locked}); blinded: no count is split "
             "by arm", "", "Enrolment per site (randomized against target)",
             f"  {'site':<6} {'screened':>8} {'eligible':>8} {'consented':>9} {'randomized':>10} "
             f"{'withdrawn':>9} {'target':>6} {'%':>5}"]
    for e in st.sites:
        lines.append(f"  {e.code:<6} {e.screened:>8} {e.eligible:>8} {e.consented:>9} "
                     f"{e.randomized:>10} {e.withdrawn:>9} {e.target or 0:>6} "
                     f"{_percent(e.percent_of_target):>5}")
    total = sum(e.randomized for e in st.sites)
    lines.append(f"  {'all':<6} {sum(e.screened for e in st.sites):>8} "
                 f"{sum(e.eligible for e in st.sites):>8} "
                 f"{sum(e.consented for e in st.sites):>9} {total:>10} "
                 f"{sum(e.withdrawn for e in st.sites):>9} {st.target:>6} "
                 f"{_percent(100.0 * total / st.target if st.target else None):>5}")
    lines += ["", "Enrolment per stratum",
              f"  {'stratum':<10} {'screened':>8} {'eligible':>8} {'randomized':>10}"
              + (f" {'sealed':>7} {'used':>5} {'left':>5}" if st.envelopes is not None else "")]
    usage = {u.stratum: u for u in st.envelopes or ()}
    for e in st.strata:
        line = f"  {e.code:<10} {e.screened:>8} {e.eligible:>8} {e.randomized:>10}"
        u = usage.get(e.code)
        if st.envelopes is not None and u is not None:
            flag = "  EXHAUSTED" if u.sealed and not u.left else ""
            line += f" {u.sealed:>7} {u.used:>5} {u.left:>5}{flag}"
        lines.append(f"{line}   {e.name}")
    if st.envelopes is not None:
        lines.append("  (sealed, used and left: envelopes of the stratum's allocation list)")
    lines += ["", "Diary completeness per window (randomized participants)",
              f"  {'window':<9} {'people':>6} {'days recorded / expected':>25} {'%':>5} "
              f"{'window over':>11} {'prorated':>8}"]
    for w in st.completeness:
        days = f"{w.days_recorded} / {w.days_expected}"
        mark = " (primary)" if w.primary else ""
        lines.append(f"  {w.window:<9} {w.participants:>6} {days:>25} {_percent(w.percent):>5} "
                     f"{w.elapsed:>11} {w.prorated:>8}{mark}")
    lines += ["", f"Overdue diary ({len(st.overdue)})"]
    if not st.overdue:
        lines.append("  nobody: every randomized participant's current window is up to date")
    for o in st.overdue:
        last = o.last_recorded.isoformat() if o.last_recorded else "never"
        risk = "  AT RISK: the window can no longer be prorated" if o.at_risk else ""
        lines.append(f"  {o.participant_id:<9} {o.site:<5} {o.window:<8} {o.missing_days:>3} "
                     f"day{'s' if o.missing_days != 1 else ' '} missing, last day {last}{risk}")
    c = st.consort
    from trialkit.render.figures import consort_rows

    reasons = ", ".join(f"{cid} {n}" for cid, n in c.ineligible_by_criterion) or "none"
    rows = consort_rows(c)
    width = max(len(label) for label, _ in rows)
    lines += ["", "CONSORT flow (blinded: arms pooled)"]
    lines += [f"  {label:<{width}} {n:>6}" for label, n in rows]
    lines.append(f"  (not eligible by criterion: {reasons})")
    return "\n".join(lines)


def status(
    ctx: typer.Context,
    figure: Annotated[
        str | None,
        typer.Option("--figure", help="Also draw the enrolment curve and the CONSORT flow "
                                      "into this SVG file"),
    ] = None,
) -> None:
    """Enrolment per site and stratum against target, diary completeness, overdue diaries
    and the CONSORT flow (any role; blinded)."""
    c = cli(ctx)
    path = _svg_path(figure) if figure else None
    with c.as_reader() as (actor, trial):
        st = trial.trial_status(actor)
    if path is not None:
        from trialkit.render.figures import status_svg

        _write_text(path, status_svg(st))
    doc = _status_doc(st) | {"figure": str(path) if path else None}
    c.emit(doc, lambda: status_text(st) + (f"\n\nFigure: {path}" if path else ""))


# --- lock --------------------------------------------------------------------------------------


def lock(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help=YES_HELP)] = False,
    checkpoint_out: Annotated[str | None, typer.Option(
        "--checkpoint", help="Where the signed checkpoint of the locked trail goes (default "
        "TRIAL-lock.checkpoint.json in this folder; never overwritten)")] = None,
) -> None:
    """Lock the database (investigator): from now on no clinical data can change, and the
    unblinded export becomes possible. Cannot be undone: asks at a terminal, and needs
    --yes without one; audited. Writes a signed checkpoint of the audit trail as locked
    (keep it outside the database: `audit verify --checkpoint FILE`)."""
    from trialkit.services.integrity.checkpoints import checkpoint_path

    c = cli(ctx)
    info = c.trial()
    path = checkpoint_path(checkpoint_out or f"{info.trial_code.lower()}-lock.checkpoint.json")
    confirm_irreversible(
        f"Lock {info.trial_code} now? No clinical data can change after this, and it "
        "cannot be undone", yes=yes, what="the database lock")
    actor = c.actor()
    r, cp = c.use_cases().lock(actor, path)
    c.emit(
        {
            "trial": r.trial_code,
            "locked_at": r.locked_at.isoformat(),
            "locked_by": r.locked_by,
            "participants": r.participants,
            "randomized": r.randomized,
            "diary_days": r.diary_days,
            "checkpoint": str(path),
        },
        f"Locked {r.trial_code} on {shown(r.locked_at)} by {r.locked_by}: no "
        f"clinical data can change from now on ({r.participants} participants screened, "
        f"{r.randomized} randomized, {r.diary_days} diary days).\n"
        f"Signed checkpoint of the audit trail ({cp.events} events): {path} — keep it "
        "outside the database.",
    )


# --- export ------------------------------------------------------------------------------------


def _export_doc(r: "ExportResult", checkpoint: Path) -> dict[str, Any]:
    return {
        "checkpoint": str(checkpoint),
        "export": r.kind,
        "blinded": r.blinded,
        "rows": r.rows,
        "participants": r.participants,
        "as_of": r.as_of.isoformat(),
        "files": [{"path": str(f.path), "sha256": f.sha256, "bytes": f.bytes} for f in r.files],
    }


def _export_text(r: "ExportResult", checkpoint: Path) -> str:
    kind = "BLINDED" if r.blinded else "UNBLINDED (with arm)"
    lines = [f"{kind} {r.kind} export: {r.rows} rows, {r.participants} participants, as of "
             f"{r.as_of}"]
    lines += [f"  {f.path}  sha256 {f.sha256}" for f in r.files]
    lines.append("Audited with these checksums.")
    lines.append(f"Signed checkpoint of the audit trail: {checkpoint} (keep it outside the "
                 "database)")
    return "\n".join(lines)


def export(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="outcomes, diary or participants")],
    out: Annotated[str, typer.Option("--out", help="CSV file to write, e.g. outcomes.csv")],
    unblinded: Annotated[
        bool, typer.Option("--unblinded", help="Add the arm (after lock; custodians only)")
    ] = False,
) -> None:
    """Export outcomes, diary or participants (baseline covariates and the date of each
    stage) as CSV with a data dictionary (NAME.dictionary.csv) and a manifest of SHA-256
    checksums (NAME.manifest.json) beside it (investigator). Blinded unless --unblinded
    (outcomes and diary only)."""
    from rich.console import Console
    from rich.progress import Progress

    from trialkit.domain.roles import Permission
    from trialkit.services.exports.datasets import ExportFiles, check_kind

    c = cli(ctx)
    check_kind(kind, unblinded=unblinded)
    data = ExportFiles(out).data  # bad input before anyone signs in
    actor = c.sign_in_to_read()  # recorded with the export's event, after the reading
    password = None
    if unblinded and actor.custodian and actor.can(Permission.EXPORT):
        password = ask_secret(f"Password of {actor.name} (unlocks your custodian key): ",
                              "TRIALKIT_PASSWORD")
    bar = Progress(console=Console(stderr=True), transient=True,
                   disable=c.json or not sys.stderr.isatty())
    with bar:
        task = bar.add_task(f"Exporting {kind}", total=None)
        r, path = c.use_cases().export(
            actor, kind, data, unblinded=unblinded, password=password,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    c.emit(_export_doc(r, path), lambda: _export_text(r, path))
