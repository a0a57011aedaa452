"""docs/cli.md, rendered from the click commands themselves: the help a user gets, per command."""

from __future__ import annotations

import click

from nbelastic.cli import main

WIDTH = 100


def _commands(command: click.Command, parent: click.Context | None, name: str):
    """(context, command) for ``command`` and every subcommand, depth first, sorted by name."""
    settings = {**command.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    context = click.Context(command, info_name=name, parent=parent, **settings)
    yield context, command
    if isinstance(command, click.Group):
        for sub_name in sorted(command.list_commands(context)):
            sub = command.get_command(context, sub_name)
            if not sub.hidden:
                yield from _commands(sub, context, sub_name)


def render() -> str:
    """The whole page."""
    lines = [
        "# CLI reference",
        "",
        "Generated from the click commands of `nbelastic/cli.py`: each section is what",
        "`--help` prints. Regenerate with",
        "`NBELASTIC_WRITE_DOCS=1 python -m pytest tests/test_docs.py -k cli_reference`.",
        "",
    ]
    for context, command in _commands(main, None, "nbelastic"):
        title = context.command_path
        lines += [f"## {title}", "", "```text", command.get_help(context).rstrip(), "```", ""]
    return "\n".join(lines)
