"""``jobq completion SHELL``: click's completion script for bash, zsh or fish, printed to be
sourced (README, "Command line"). The script calls ``jobq`` back with ``_JOBQ_COMPLETE`` set,
so completions always match the installed commands."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

COMPLETE_VAR = "_JOBQ_COMPLETE"  # click's default for a program named jobq
SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash: eval "$(jobq completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(jobq completion zsh)"    (in ~/.zshrc)
    fish: jobq completion fish > ~/.config/fish/completions/jobq.fish
    """
    from jobq.cli.main import cli  # the group being completed (imported when run: no cycle)

    cls = get_completion_class(shell)
    if cls is None:  # click knows every shell of SHELLS
        raise click.UsageError(f"no completion for {shell}")
    click.echo(cls(cli, {}, "jobq", COMPLETE_VAR).source())
