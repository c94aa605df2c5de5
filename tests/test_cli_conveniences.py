"""Shell completion (`jobq completion bash|zsh|fish`) and `jobq config show`: the settings a
process would run with, where each came from, secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.any_server

BIN = Path(sys.executable).parent
JOBQ = str(BIN / "jobq")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBQ_", "REDIS_URL"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the script calls `jobq` back
    env.update(extra)
    return env


def bash_completes(lines: list[str], tmp_path: Path) -> list[list[str]]:
    """What bash offers for each command line (its last word being typed) through the sourced
    script: one shell, the script sourced once."""
    script = 'eval "$(jobq completion bash)"\n'
    for words in lines:
        script += (f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMPREPLY=()\n"
                   '_jobq_completion jobq; echo "${COMPREPLY[*]}"\n')
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split() for line in done.stdout.splitlines()]


def test_bash_completion_script_offers_subcommands(tmp_path: Path) -> None:
    offered = bash_completes(["jobq enq", "jobq op", "jobq dlq sh", "jobq config sh",
                              "jobq completion ''"], tmp_path)
    assert offered == [["enqueue"], ["operator"], ["show"], ["show"], ["bash", "zsh", "fish"]]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_call_jobq_back_for_subcommands(shell: str, tmp_path: Path) -> None:
    """zsh and fish are not installed here: their scripts are checked to call jobq back with
    click's protocol, and that call is asked for a subcommand as the script would."""
    source = subprocess.run([JOBQ, "completion", shell], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert source.returncode == 0 and f"_JOBQ_COMPLETE={shell}_complete" in source.stdout
    cword = "wor" if shell == "fish" else "1"  # fish passes the current token itself
    asked = subprocess.run([JOBQ], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                           env=clean_env(_JOBQ_COMPLETE=f"{shell}_complete",
                                         COMP_WORDS="jobq wor", COMP_CWORD=cword))
    assert asked.returncode == 0, asked.stderr
    assert "worker" in asked.stdout.split() or "plain,worker" in asked.stdout, asked.stdout


def test_completion_refuses_an_unknown_shell(tmp_path: Path) -> None:
    done = subprocess.run([JOBQ, "completion", "tcsh"], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "tcsh" in done.stderr and "Traceback" not in done.stderr


def test_config_show_gives_each_settings_source_and_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("JOBQ_API_TOKENS=tok-file-1,tok-file-2\nJOBQ_LEASE_S=42\n"
                                   "JOBQ_LOG_LEVEL=debug\n")
    env = clean_env(REDIS_URL="redis://app:hunter2@redis.example:6379/0",
                    JOBQ_LOG_LEVEL="warning", JOBQ_REDIS_PASSWORD="unused-secret")
    shown = subprocess.run([JOBQ, "config", "show", "--json"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    for secret in ("hunter2", "tok-file", "unused-secret"):
        assert secret not in shown.stdout
    rows = json.loads(shown.stdout)["settings"]
    assert rows["REDIS_URL"] == {"value": "redis://app:***@redis.example:6379/0", "source": "env"}
    assert rows["JOBQ_API_TOKENS"] == {"value": ["***", "***"], "source": ".env"}
    assert rows["JOBQ_REDIS_PASSWORD"] == {"value": "***", "source": "env"}
    assert rows["JOBQ_LEASE_S"] == {"value": 42.0, "source": ".env"}
    assert rows["JOBQ_LOG_LEVEL"] == {"value": "warning", "source": "env"}  # env over .env
    assert rows["JOBQ_KEY_PREFIX"] == {"value": "jobq", "source": "default"}
    text = subprocess.run([JOBQ, "config", "show"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert text.returncode == 0 and "hunter2" not in text.stdout and "tok-file" not in text.stdout
    line = next(x for x in text.stdout.splitlines() if x.startswith("JOBQ_LEASE_S "))
    assert line.split() == ["JOBQ_LEASE_S", ".env", "42.0"]


def test_config_show_refuses_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([JOBQ, "config", "show"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=clean_env(JOBQ_LEASE_SECONDS="5"))
    assert done.returncode == 1 and done.stdout == "", done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "JOBQ_LEASE_SECONDS" in lines[0], done.stderr
