"""Where settings come from: the environment over `.env` in the cwd, unknown JOBQ_* names refused
in either, values given to ``Settings(...)`` taken as given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobq.demo import DemoSettings
from jobq.errors import ConfigError
from jobq.settings import Settings, load_settings


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cwd of its own and an environment without any setting in it."""
    for name in list(os.environ):
        if name.upper().startswith("JOBQ_") or name.upper() == "REDIS_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_environment_wins_over_env_file_and_the_file_fills_the_rest(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cwd / ".env").write_text(
        "# a comment\nexport JOBQ_LEASE_S=7\nJOBQ_KEY_PREFIX='fromfile'\n"
        "REDIS_URL=redis://filehost:6380/2\nJOBQ_TASKS=a, b\n")
    monkeypatch.setenv("JOBQ_KEY_PREFIX", "fromenv")
    settings = load_settings()
    assert settings.key_prefix == "fromenv"
    assert settings.lease_s == 7.0
    assert settings.redis_url == "redis://filehost:6380/2"
    assert settings.tasks == ["a", "b"]


def test_names_are_case_insensitive_and_overrides_win_over_both(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cwd / ".env").write_text("jobq_completed_keep=5\n")
    monkeypatch.setenv("jobq_shutdown_grace_s", "3")
    settings = load_settings(completed_keep=9)
    assert (settings.completed_keep, settings.shutdown_grace_s) == (9, 3.0)


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_an_unknown_jobq_name_is_refused_wherever_it_is(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # JOBQ_REDIS_URL looks right but is not the variable (REDIS_URL is): refused, not ignored.
    for name in ("JOBQ_LEASE_SECONDS", "JOBQ_REDIS_URL"):
        if where == ".env":
            with (cwd / ".env").open("a") as env_file:
                env_file.write(f"{name}=1\n")
        else:
            monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError, match=r"^unknown setting\(s\): JOBQ_LEASE_SECONDS, "
                                          r"JOBQ_REDIS_URL \(see \.env\.example\)$"):
        load_settings()


def test_an_invalid_value_from_env_file_names_the_variable_not_the_value(cwd: Path) -> None:
    (cwd / ".env").write_text("JOBQ_API_TOKENS=s3cret\nJOBQ_MAX_BODY_BYTES=-4\n")
    with pytest.raises(ConfigError, match=r"^invalid settings: JOBQ_MAX_BODY_BYTES: ") as caught:
        load_settings()
    assert "-4" not in str(caught.value)


def test_other_variables_in_env_file_are_not_settings_and_the_demo_reads_its_own(
    cwd: Path,
) -> None:
    (cwd / ".env").write_text("JOBQ_DEMO_OUTBOX=out/box.jsonl\nDATABASE_URL=postgres://x\n"
                              "JOBQ_TEST_WHATEVER=1\n")
    assert load_settings() == Settings()
    assert DemoSettings.load().outbox == "out/box.jsonl"


def test_values_given_to_settings_are_taken_as_given_not_read_from_the_environment(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBQ_KEY_PREFIX", "fromenv")
    (cwd / ".env").write_text("JOBQ_LEASE_S=7\n")
    settings = Settings(completed_keep=3)
    assert (settings.key_prefix, settings.lease_s, settings.completed_keep) == (
        Settings.model_fields["key_prefix"].default, Settings.model_fields["lease_s"].default, 3)
