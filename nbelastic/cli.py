"""The ``nbelastic`` command: run a notebook and save its state, verify, inspect, strip.

Every command prints one clear line per problem and exits non-zero; ``--json`` is for scripts.
Exit codes: 0 success, 1 a verification mismatch or a failed cell, 2 bad input or usage.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from nbelastic import __version__
from nbelastic.errors import NbelasticError
from nbelastic.progress import Progress

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _fail(error: NbelasticError) -> None:
    click.echo(f"nbelastic: error: {error}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _every(ctx, param, value):
    if value is None:
        return None
    from nbelastic.headless import parse_every

    try:
        return parse_every(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _notebook_argument(function):
    # Any path: nbelastic.notebook says in one line what is wrong with it (a directory, ...).
    return click.argument("notebook", type=click.Path(path_type=Path))(function)


def _trust_option(function):
    return click.option(
        "--trust",
        is_flag=True,
        help="Load the checkpoint even if you did not sign it: unpickles and replays its code.",
    )(function)


def _verbose_option(function):
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="List each variable not loaded, also when the reason is the same for all.",
    )(function)


def _confirm(question: str) -> bool:
    """click.confirm, with one line instead of click's bare `Aborted!` when no answer can come
    (standard input closed or not a terminal, as in a script)."""
    try:
        return click.confirm(question)
    except click.Abort:
        click.echo()  # ends the question's line
        _fail(
            NbelasticError(
                "nothing signed: no answer came on standard input; to sign without being "
                "asked, run the command again with --yes"
            )
        )


def _bandwidth(ctx, param, value):
    if value is None:
        return None
    from nbelastic.kernel import parse_bandwidth

    try:
        return parse_bandwidth(value)
    except Exception as error:  # argparse.ArgumentTypeError carries the readable message
        raise click.BadParameter(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbelastic")
def main() -> None:
    """Save a notebook with its live state and resume it in a fresh kernel.

    \b
    In a notebook:   %load_ext nbelastic   ...   %nbelastic save
    In a new kernel: %nbelastic restore
    From the shell:  nbelastic run NB.ipynb  then  nbelastic verify NB.ipynb

    \b
    Exit codes:
      0  success
      1  a verification mismatch, a failed cell, or a declined confirmation
      2  bad input or usage: one line on stderr says what is wrong and what to do
    """


@main.command()
@_notebook_argument
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the executed notebook and its checkpoint here instead of in place.",
)
@click.option(
    "--plan",
    type=click.Choice(["optimal", "store-all", "recompute-all"]),
    default="optimal",
    show_default=True,
    help="How to choose what to store.",
)
@click.option(
    "--bandwidth",
    callback=_bandwidth,
    help="Store bandwidth for the cost model, e.g. 100MB/s (default: measured).",
)
@click.option("--allow-errors", is_flag=True, help="Keep going after a cell raises.")
@click.option(
    "--store",
    metavar="URL|DIR",
    help="Store the variables there (e.g. s3://bucket/prefix) instead of next to NOTEBOOK.",
)
@click.option(
    "--checkpoint-every",
    "every",
    callback=_every,
    metavar="cell|SECONDS",
    help="Also save between cells: after each one, or once SECONDS have passed.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run from its last checkpoint, with the next cell.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("--json", "as_json", is_flag=True, help="Print the save report as JSON.")
def run(
    notebook, output, plan, bandwidth, allow_errors, store, every, resume, quiet, as_json
) -> None:
    """Execute every cell of NOTEBOOK in a new kernel and save the state into it.

    With --checkpoint-every the state is saved along the way; if the run is killed (the
    kernel or this command), `nbelastic run NOTEBOOK --resume` restores the last checkpoint in
    a new kernel and runs the cells after it.
    """
    from nbelastic.driver import KernelDiedError
    from nbelastic.headless import run as run_headless

    target = output or notebook
    try:
        with Progress(enabled=not (quiet or as_json)) as echo:
            outcome = run_headless(
                notebook,
                target,
                plan=plan,
                bandwidth=bandwidth,
                allow_errors=allow_errors,
                checkpoint_every=every,
                resume=resume,
                echo=echo,
                store=store,
            )
    except KernelDiedError as error:
        click.echo(f"nbelastic: {error}", err=True)
        sys.exit(EXIT_FAILED)
    except NbelasticError as error:
        _fail(error)
    report = outcome.report
    if as_json:
        click.echo(
            json.dumps(
                {
                    **report,
                    "failed_cell": outcome.failed_cell,
                    "cells_run": outcome.cells_run,
                    "cells_total": outcome.cells_total,
                    "resumed_from": outcome.resumed_from,
                },
                indent=1,
            )
        )
    elif not quiet:
        click.echo(_save_summary(target, report, outcome.seconds))
    if outcome.failed_cell is not None:
        if not as_json:
            click.echo(
                f"nbelastic: cell {outcome.failed_cell} raised {outcome.error}; "
                "the state up to it was saved",
                err=True,
            )
        sys.exit(EXIT_FAILED)


def _save_summary(notebook: Path, report: dict, run_seconds: float) -> str:
    from nbelastic.planner import format_bytes

    lines = [
        f"ran {notebook.name} in {run_seconds:.2f} s and saved its state "
        f"in {report['seconds']:.2f} s",
        f"  stored   ({format_bytes(report['bytes_stored'])}, "
        f"{format_bytes(report['bytes_new'])} new): {', '.join(report['stored']) or '-'}",
        f"  replayed (cells {', '.join(map(str, report['replay_cells'])) or '-'}): "
        f"{', '.join(report['replayed']) or '-'}",
        f"  estimated restore time: {report['estimated_restore_seconds']:.2f} s",
    ]
    if report["lost"]:
        lines.append(f"  NOT restorable: {', '.join(report['lost'])}")
    return "\n".join(lines)


@main.command()
@_notebook_argument
@click.option("-q", "--quiet", is_flag=True, help="Only the exit code and errors.")
@_verbose_option
@click.option("--json", "as_json", is_flag=True, help="Print the restore report as JSON.")
@_trust_option
def verify(notebook, quiet, verbose, as_json, trust) -> None:
    """Restore NOTEBOOK's state in a new kernel and check every variable."""
    from nbelastic.driver import restore_notebook

    started = time.perf_counter()
    try:
        with Progress(enabled=not (quiet or as_json)) as echo:
            report = restore_notebook(notebook, echo=echo, trust=trust)
    except NbelasticError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    elif not quiet:
        click.echo(_verify_summary(notebook, report, time.perf_counter() - started, verbose))
    if not report["ok"]:
        sys.exit(EXIT_FAILED)


@main.command()
@_notebook_argument
@click.option("--at", "at", metavar="ID", help="An earlier checkpoint (see `nbelastic log`).")
@click.option("-q", "--quiet", is_flag=True, help="Only the exit code and errors.")
@_verbose_option
@click.option("--json", "as_json", is_flag=True, help="Print the restore report as JSON.")
@_trust_option
def restore(notebook, at, quiet, verbose, as_json, trust) -> None:
    """Restore NOTEBOOK's state, or the checkpoint ID, in a new kernel and check it.

    The kernel ends with the command: this tells whether the state comes back whole. To
    continue working from a checkpoint, run `%nbelastic restore --at ID` in the notebook.
    """
    from nbelastic.driver import restore_notebook

    started = time.perf_counter()
    try:
        with Progress(enabled=not (quiet or as_json)) as echo:
            report = restore_notebook(notebook, at=at, echo=echo, trust=trust)
    except NbelasticError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    elif not quiet:
        seconds = time.perf_counter() - started
        click.echo(_verify_summary(notebook, report, seconds, verbose, at=at))
    if not report["ok"]:
        sys.exit(EXIT_FAILED)


def _verify_summary(
    notebook: Path, report: dict, total_seconds: float, verbose: bool, at: str | None = None
) -> str:
    total = len(report["verified"]) + len(report["unverifiable"]) + len(report["mismatched"])
    total += len(report["not_loaded"])
    verdict = "OK" if report["ok"] else "MISMATCH"
    if not report["ok"] and not report["mismatched"] and not report["failed_cells"]:
        verdict = "INCOMPLETE"
    line = (
        f"{verdict}: {notebook.name}{'' if at is None else f' at {at}'}: "
        f"{len(report['verified'])}/{total} variables verified "
        f"(loaded {len(report['loaded'])}, replayed {len(report['replayed'])} cells) "
        f"restore {report['seconds']:.2f} s, with kernel start {total_seconds:.2f} s"
    )
    details = [f"  {name}: {why}" for name, why in report["mismatched"].items()]
    details += [f"  cell {cell} raised {why}" for cell, why in report["failed_cells"].items()]
    if report["unverifiable"]:
        details.append(f"  not comparable: {', '.join(report['unverifiable'])}")
    if report["lost"]:
        details.append(f"  not restorable (said at save): {', '.join(report['lost'])}")
    details += [f"  {name}: {why}" for name, why in report["rebuilt"].items()]
    from nbelastic.restore_plan import NOT_TRUSTED

    not_loaded = report["not_loaded"]
    held_back = [name for name, why in not_loaded.items() if why.startswith(NOT_TRUSTED)]
    if held_back and not verbose:  # one reason, said once by the warning below
        line += f"; {len(held_back)} not loaded as not trusted (--verbose lists them)"
        not_loaded = {n: why for n, why in not_loaded.items() if n not in held_back}
    details += [f"  {name} NOT loaded: {why}" for name, why in not_loaded.items()]
    details += [f"nbelastic: {warning}" for warning in report["warnings"]]
    return "\n".join([line, *details])


@main.command()
@click.argument("notebooks", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--sidecar",
    is_flag=True,
    help="Also drop the checkpoint from the sidecar's history (of a notebook stripped before, "
    "the whole history) and delete the blobs no other checkpoint uses (the whole sidecar when "
    "none is left).",
)
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read one notebook on stdin and write it stripped to stdout (a git clean filter); "
    "a NOTEBOOKS name only tells its format (default .ipynb).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def strip(notebooks, sidecar, from_stdin, quiet, as_json) -> None:
    """Remove the saved state from NOTEBOOKS.

    \b
    Without --sidecar the sidecar store is left alone: `nbelastic log` still lists the
    checkpoint and `nbelastic restore --at` can bring it back. As a pre-commit hook, see
    .pre-commit-hooks.yaml; as a git filter, `nbelastic strip --stdin %f`.
    """
    from nbelastic.notebook import strip_checkpoint, strip_checkpoint_text

    if from_stdin:
        if sidecar or len(notebooks) > 1:
            _fail(NbelasticError("--stdin strips one notebook and no sidecar: drop --sidecar"))
        name = str(notebooks[0]) if notebooks else "<stdin>.ipynb"
        try:
            text = sys.stdin.buffer.read().decode("utf-8")
            sys.stdout.buffer.write(strip_checkpoint_text(text, name).encode("utf-8"))
        except UnicodeDecodeError:
            _fail(NbelasticError(f"{name} on stdin is not UTF-8 text: give a notebook"))
        except NbelasticError as error:
            _fail(error)
        return
    if not notebooks:
        _fail(NbelasticError("give the notebooks to strip, or --stdin (see --help)"))
    from nbelastic.garbage import strip_with_sidecar

    results, failed = [], False
    for notebook in notebooks:
        try:
            if sidecar:
                done = strip_with_sidecar(notebook)
                line, result = done.summary(), done.to_json()
            else:
                removed = strip_checkpoint(notebook)
                line = "checkpoint removed" if removed else "no checkpoint"
                result = {"checkpoint_removed": removed}
        except NbelasticError as error:
            click.echo(f"nbelastic: error: {error}", err=True)
            failed = True
            continue
        results.append({"notebook": str(notebook), **result})
        if not (quiet or as_json):
            click.echo(f"{notebook}: {line}")
    if as_json:
        click.echo(json.dumps(results, indent=1))
    if failed:
        sys.exit(EXIT_BAD_INPUT)


@main.command()
@_notebook_argument
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--graph",
    "graph_path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    metavar="FILE",
    help="Also draw the history graph with the plan on it: SVG, DOT if FILE ends in .dot, "
    "- for SVG on stdout.",
)
def status(notebook, as_json, graph_path) -> None:
    """What NOTEBOOK's saved checkpoint holds: each variable's type, size, fate, cost.

    Fate is stored (loaded from the sidecar) or replayed (rebuilt by re-running cells); cost
    is the estimated seconds to bring it back. Read from the metadata: no kernel starts.
    """
    from nbelastic.graph import render_svg, write_graph
    from nbelastic.status import saved_graph, saved_status

    to_stdout = graph_path == Path("-")
    if to_stdout and as_json:
        _fail(NbelasticError("--json and --graph - both print to stdout: give --graph a file"))
    try:
        found = saved_status(notebook)
        graph = None if graph_path is None else saved_graph(notebook)
        if graph is not None and not to_stdout:
            write_graph(graph, graph_path)
    except NbelasticError as error:
        _fail(error)
    if to_stdout:
        click.echo(render_svg(graph), nl=False)
        return
    click.echo(json.dumps(found.to_json(), indent=1) if as_json else found.table())
    if not as_json:
        for warning in found.warnings:
            click.echo(f"nbelastic: {warning}", err=True)
    if graph_path is not None and not as_json:
        click.echo(f"history graph drawn to {graph_path}")


@main.command()
@_notebook_argument
@click.option("-n", "--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option(
    "--min-age",
    type=click.FloatRange(min=0),
    default=3600,
    show_default=True,
    metavar="SECONDS",
    help="Keep blobs younger than this: a save in progress may be writing them.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def gc(notebook, dry_run, min_age, quiet, as_json) -> None:
    """Delete the blobs of NOTEBOOK's sidecar that no checkpoint uses.

    Checkpoints in use: the one NOTEBOOK (and its jupytext twin) holds and every one that
    `nbelastic log` lists. Nothing is deleted if one of them cannot be read.
    """
    from nbelastic.garbage import collect

    try:
        collection = collect(notebook, min_age=min_age, dry_run=dry_run)
    except NbelasticError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps(collection.to_json(), indent=1))
    elif not quiet:
        click.echo(f"{notebook}: {collection.summary(dry_run=dry_run)}")


@main.command()
@_notebook_argument
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoints as JSON.")
def log(notebook, as_json) -> None:
    """List NOTEBOOK's checkpoints: when, how many variables, bytes, what changed.

    \b
    * marks the checkpoint the notebook holds; changes are against the checkpoint before:
    +added ~changed -removed. Restore one with `nbelastic restore NOTEBOOK --at ID`.
    """
    from nbelastic.timeline import checkpoint_log, format_log

    try:
        entries = checkpoint_log(notebook)
    except NbelasticError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps([entry.to_json() for entry in entries], indent=1))
    else:
        click.echo(format_log(entries))


@main.command()
@_notebook_argument
@click.argument("before", metavar="A")
@click.argument("after", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
def diff(notebook, before, after, as_json) -> None:
    """Show the variables added, changed and removed from checkpoint A to checkpoint B.

    A and B are ids as `nbelastic log` prints them or their start (2-bc77), numbers, digest
    prefixes, or `latest`.
    """
    from nbelastic.timeline import checkpoint_diff, format_diff

    try:
        compared = checkpoint_diff(notebook, before, after)
    except NbelasticError as error:
        _fail(error)
    click.echo(json.dumps(compared.to_json(), indent=1) if as_json else format_diff(compared))


@main.command()
@_notebook_argument
@click.option("-y", "--yes", is_flag=True, help="Sign without asking (for scripts).")
def trust(notebook, yes) -> None:
    """Show what restoring NOTEBOOK's state would run, then sign it as yours.

    A restore runs code (unpickling, imports, replayed cells) only from checkpoints you signed;
    your saves are signed already. Sign someone else's checkpoint only after reading this.
    """
    from nbelastic.review import review, trust_notebook

    try:
        shown = review(notebook)
        if shown.trusted:
            click.echo(f"{notebook}: already signed by you; nothing to do")
            return
        click.echo(shown.text)
        if not yes and not _confirm("Trust this checkpoint and sign it as yours?"):
            click.echo(f"{notebook}: not signed", err=True)
            sys.exit(EXIT_FAILED)
        trust_notebook(notebook)
    except NbelasticError as error:
        _fail(error)
    click.echo(f"{notebook}: signed; restoring it now loads everything")


@main.group(name="git")
def git_group() -> None:
    """Readable git diffs of notebook state, like `nbstripout --install`.

    \b
    nbelastic git install     .gitattributes + this clone's git config
    nbelastic git status      what is installed (exit 1 if nothing)
    nbelastic git uninstall   remove both
    """


@git_group.command(name="install")
@click.option(
    "--strip",
    is_flag=True,
    help="Also strip the state from notebooks as git adds them (a clean filter).",
)
def git_install(strip) -> None:
    """Set up diffs of notebooks, sidecar blobs and checkpoints in this repository."""
    from nbelastic import git

    try:
        root = git.repository_root()
        git.install(root, strip=strip)
    except NbelasticError as error:
        _fail(error)
    click.echo(f"installed in {root}: commit .gitattributes; each clone runs this once")


@git_group.command(name="uninstall")
def git_uninstall() -> None:
    """Remove what `nbelastic git install` set up in this repository."""
    from nbelastic import git

    try:
        root = git.repository_root()
        git.uninstall(root)
    except NbelasticError as error:
        _fail(error)
    click.echo(f"uninstalled from {root}")


@git_group.command(name="status")
def git_status() -> None:
    """Show whether this repository is set up; exit 1 if it is not."""
    from nbelastic import git

    try:
        found = git.status(git.repository_root())
    except NbelasticError as error:
        _fail(error)
    click.echo(found.summary())
    if not found.installed:
        sys.exit(EXIT_FAILED)


@git_group.command(name="textconv")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def git_textconv(path) -> None:
    """Print PATH as readable text for a diff (git runs this; no code in it runs)."""
    from nbelastic.textconv import textconv

    try:
        data = path.read_bytes()
    except OSError as error:
        _fail(NbelasticError(f"cannot read {path} ({error.strerror or error}): check the path"))
    sys.stdout.buffer.write(textconv(data).encode("utf-8"))
