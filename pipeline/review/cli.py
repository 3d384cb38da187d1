"""``forcecov review ...``: the analyst review loop's commands (added to the main command
line by :mod:`pipeline.cli`). Parse, call the review package, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..terminal import err, fail, out, print_table

review_app = typer.Typer(no_args_is_help=True, help="The analyst review loop.")


@review_app.command("export")
def review_export(
    ctx: typer.Context,
    from_dir: Annotated[
        Path, typer.Option("--from", help="A scoring run folder (forcecov score --out)")
    ],
    out_file: Annotated[
        Path, typer.Option("--out", help="Queue file: .csv, .jsonl or .labelstudio.json")
    ],
    n: Annotated[int | None, typer.Option("--n", help="How many passages")] = None,
    strategy: Annotated[str | None, typer.Option(help="uncertainty | margin | diverse")] = None,
) -> None:
    """Queue the passages the model is least sure of, for analysts to label."""
    from .formats import export_queue

    queue = export_queue(ctx.obj, from_dir, out_file, n=n, strategy=strategy)
    out.print(f"queued {len(queue.items)} passages ({queue.strategy}) -> {out_file}")


@review_app.command("import")
def review_import(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="Reviewed .csv, .jsonl or Label Studio export .json")
    ],
    annotator: Annotated[str, typer.Option("--annotator", help="Who gave these labels")],
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="Run folder to resolve passage ids")
    ] = None,
) -> None:
    """Append reviewed labels to data/labelled/reviewed.jsonl, with provenance."""
    from .store import import_reviews, known_passages

    result = import_reviews(file, annotator=annotator, taxonomy=ctx.obj.taxonomy,
                            reviewed=ctx.obj.paths.reviewed,
                            known=known_passages(from_dir) if from_dir else None)
    out.print(f"{result.n_rows} decisions read: {result.n_added} added, "
              f"{result.n_already} already imported -> {result.path}")


@review_app.command("conflicts")
def review_conflicts(ctx: typer.Context) -> None:
    """List passages on which annotators disagree."""
    from .store import conflicts

    table = conflicts(ctx.obj.paths.reviewed)
    if table.empty:
        out.print("no conflicts")
        return
    print_table(f"{table['passage'].nunique()} passages with conflicting labels", table)


@review_app.command("audit")
def review_audit(
    ctx: typer.Context,
    top: Annotated[int, typer.Option(help="How many to list")] = 30,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the ranking as a queue (.csv/.jsonl)"),
    ] = None,
) -> None:
    """Rank likely label errors in data/labelled from out-of-fold probabilities."""
    from .audit import audit_labelled

    with err.status("Cross-validating to find likely label errors..."):
        table = audit_labelled(ctx.obj, top=top, out=out_file)
    ranked_by = table["flagged_by"].iloc[0] if len(table) else "-"
    print_table(f"Likely label errors (ranked by {ranked_by})",
                table[["id", "labels", "suggested", "self_confidence", "text"]].assign(
                    text=table["text"].str.slice(0, 70)))
    if out_file:
        out.print(f"-> {out_file}")


BindHost = Annotated[
    str, typer.Option(help="Address to bind (127.0.0.1 by default; anything beyond "
                           "loopback warns, and the session token is then the only "
                           "protection)")
]
AllowHost = Annotated[
    list[str] | None,
    typer.Option("--allow-host",
                 help="Another name or address this machine is reached by (repeatable; "
                      "only needed with a --host beyond loopback)"),
]


@review_app.command("serve")
def review_serve(
    ctx: typer.Context,
    queue: Annotated[
        Path | None, typer.Option("--queue", help="A queue file from `review export`")
    ] = None,
    from_dir: Annotated[Path | None, typer.Option("--from", help="A scoring run folder")] = None,
    annotator: Annotated[str, typer.Option("--annotator", help="Who is labelling")] = "analyst",
    host: BindHost = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8765,
    n: Annotated[int | None, typer.Option("--n", help="Queue size when built from --from")] = None,
    allow_host: AllowHost = None,
) -> None:
    """A local review page: read each passage in context, tick categories, save at once."""
    from .server import serve

    if (queue is None) == (from_dir is None):
        fail("give exactly one of --queue FILE or --from RUN_DIR", code=2)
    serve(ctx.obj, queue=queue, run_dir=from_dir, annotator=annotator, host=host, port=port, n=n,
          console=out, allowed_hosts=allow_host or ())
