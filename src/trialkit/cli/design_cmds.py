"""``trialkit design report``: the protocol's randomization design beside the alternatives,
with exact predictability and imbalance figures, before sealing (on a protocol file) or on
a trial. Names no arm."""

from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer

from trialkit.cli.context import cli
from trialkit.domain.errors import InvalidInput

design_app = typer.Typer(help="Randomization designs: what they cost in predictability "
                         "and imbalance.", no_args_is_help=True)


def _sizes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InvalidInput(f"--block-sizes {text!r}: give whole numbers like 4,6") from None


def _probability(text: str | None) -> Fraction | None:
    if text is None:
        return None
    try:
        return Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise InvalidInput(f"--p {text!r}: give a probability such as 0.667 or 2/3") from None


def _pdf_path(text: str) -> Path:
    path = Path(text).expanduser()
    if path.suffix.lower() != ".pdf":
        raise InvalidInput(f"--out {text!r}: give a file name ending in .pdf")
    if path.is_dir() or not path.parent.is_dir():
        raise InvalidInput(f"--out {text!r}: give a file in an existing folder")
    return path


@design_app.command("report")
def report(
    ctx: typer.Context,
    protocol: Annotated[
        str | None,
        typer.Option("--protocol", help="A protocol file (before init); default: the trial's"),
    ] = None,
    procedure: Annotated[
        str | None,
        typer.Option("--procedure", help="permuted-blocks, big-stick, block-urn, maximal, "
                     "efron or complete (default: the protocol's)"),
    ] = None,
    mti: Annotated[int | None, typer.Option("--mti", help="Maximum tolerated imbalance "
                                            "(big-stick, maximal)")] = None,
    block_sizes: Annotated[str | None, typer.Option("--block-sizes",
                                                    help="Block sizes, e.g. 4,6")] = None,
    p: Annotated[str | None, typer.Option("--p", help="Efron's probability, e.g. 2/3")] = None,
    urn_lambda: Annotated[int | None, typer.Option("--lambda", help="Block urn's lambda")] = None,
    n: Annotated[int | None, typer.Option("--n", help="List length (default: the largest "
                                          "expected stratum)")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Write the report as a PDF")] = None,
) -> None:
    """The protocol's randomization design beside big stick, block urn, maximal, Efron and
    complete randomization: exact predictability and imbalance (no arm, no list opened)."""
    from trialkit.domain.protocol import load_protocol
    from trialkit.services.enrolment.design_report import chosen_design, design_report

    c = cli(ctx)
    if protocol is not None:
        loaded = load_protocol(protocol).protocol
    else:
        loaded = c.use_cases().protocol()
    design = chosen_design(loaded, procedure=procedure, mti=mti, block_sizes=_sizes(block_sizes),
                           p=_probability(p), urn_lambda=urn_lambda)
    path = _pdf_path(out) if out else None
    result = design_report(loaded, design=design, n=n)
    doc = result.as_dict()
    if path is not None:
        from trialkit.render.design_pdf import write_design_pdf

        write_design_pdf(result, path)
        doc["pdf"] = str(path)
    text = result.text() + (
        f"\nTrial-wide final imbalance simulated over strata of "
        f"{', '.join(map(str, result.stratum_sizes))}: see --json or --out."
    )
    if path is not None:
        text += f"\nWrote {path}"
    c.emit(doc, text)


report_app = typer.Typer(help="Reports after the database lock.", no_args_is_help=True)


@report_app.command("randomization")
def randomization(
    ctx: typer.Context,
    out: Annotated[str, typer.Option("--out", help="FILE.pdf or FILE.csv")],
) -> None:
    """After the lock, a custodian's report reproducing every allocation: per stratum every
    envelope in sequence with its arm, block, and use; the procedure, who sealed each list,
    the manifests and their verification (audited)."""
    import csv
    import io

    from trialkit.application.review import randomization_report
    from trialkit.cli.context import ask_secret
    from trialkit.services.exports.randomization_report import CSV_COLUMNS, csv_rows

    path = Path(out).expanduser()
    if path.suffix.lower() not in (".pdf", ".csv"):
        raise InvalidInput(f"--out {out!r}: give a file name ending in .pdf or .csv")
    if path.is_dir() or not path.parent.is_dir():
        raise InvalidInput(f"--out {out!r}: give a file in an existing folder")
    c = cli(ctx)
    actor = c.actor()
    password = ask_secret(f"Password of {actor.name} (unlocks your custodian key): ",
                          "TRIALKIT_PASSWORD")
    result = randomization_report(c.use_cases(), actor, password=password)
    if path.suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(result))
        path.write_text(buffer.getvalue(), encoding="utf-8")
    else:
        from trialkit.render.design_pdf import write_randomization_pdf

        write_randomization_pdf(result, path)
    used = sum(1 for e in result.envelopes if e.participant_id)
    bad = [s for s in result.segments if s.verified != "ok"]
    c.emit(
        {"file": str(path), "segments": len(result.segments),
         "envelopes": len(result.envelopes), "used": used, "verified": not bad},
        f"Wrote {path}: {len(result.segments)} list segments, {len(result.envelopes)} "
        f"envelopes ({used} used); manifests " + ("verified" if not bad else
                                                  f"FAILED for {len(bad)} segments"),
    )
