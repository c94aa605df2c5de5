"""The slot-migration fence of the Lua scripts, checked statically (runs on every server kind).

A script that builds a key name inside Lua (``jobPrefix .. id``, ``base .. ":levels"``,
``concKey .. ":parked"`` ...) touches a key it does not declare in KEYS, and Redis checks ASK
and TRYAGAIN only for declared keys. While the queue's slot is being migrated such a script
could read a key already moved as missing. jobq's fence: each such script also declares a key
that never exists (a key *prefix*, e.g. the job hash prefix ``<base>:job:``). A multi-key
command with a missing declared key is refused on a migrating slot (TRYAGAIN, or ASK and then
TRYAGAIN on the importing node), so the script never runs on a half-moved slot.
``tests/test_slot_migration.py`` proves the fence live on a cluster.
"""

from __future__ import annotations

import re

import pytest

from jobq.scripts import SCRIPT_NAMES, header_key_count, script_source

# The ways the scripts build a key name in Lua: a prefix or base key concatenated with more.
# Found by reading jobq/lua/ (grep '\.\.'): every concatenation whose left side is a key.
KEY_BUILDERS = re.compile(
    r"\b(?:k\.)?(?:jobPrefix|dlqPrefix|tpPrefix|base|prefix|concKey)\s*\.\.|"
    r"\bf\[\d+\]\s*\.\.\s*\":parked\""  # cancel.lua: the job's concKey read from its hash
)
_HEADER_KEY_LINE = re.compile(r"^\s*KEYS\[(\d+)\]\s*(.*)$", re.MULTILINE)

# The scripts that build keys but are fenced without a declared prefix: none may be added
# without an explanation here. Each fresh job's idempotency record and job hash are declared
# and do not exist yet; a multi-key command with a missing declared key cannot run on a
# migrating slot, the same fence as a prefix. A *duplicate* enqueue (both exist) returns
# before it builds any key (lib/new_job).
FENCED_BY_NEW_KEYS = {"enqueue", "enqueue_batch", "replay"}
# The fence holds on the importing node only for a command of several keys (there, after ASK
# and ASKING, a *single* missing key is served: Redis answers TRYAGAIN only when "multiple
# keys" are missing). throughput declares its prefix alone: while its slot moves it may run on
# the importing node and count only the minutes already moved. It writes nothing, so the cost
# is a low chart for a second or two.
SINGLE_KEY_READ_ONLY = {"throughput"}


def _code(source: str) -> str:
    """The source without its comments (the header describes ``prefix .. jobId`` in prose)."""
    without_blocks = re.sub(r"--\[\[.*?\]\]", "", source, flags=re.DOTALL)
    return re.sub(r"--[^\n]*", "", without_blocks)


def _declared(source: str) -> list[str]:
    """The header's fixed KEYS descriptions, in order."""
    header = source.split("]]", 1)[0]
    found = [desc for _, desc in _HEADER_KEY_LINE.findall(header)]
    assert len(found) == header_key_count(source)
    return found


def builds_keys(name: str) -> bool:
    return bool(KEY_BUILDERS.search(_code(script_source(name))))


def test_the_builders_pattern_finds_the_known_cases() -> None:
    """The pattern is not vacuous: the scripts known to reach job hashes are matched."""
    for name in ("claim", "complete", "complete_claim", "fail", "reclaim", "renew",
                 "handback", "end_cancelled", "throughput", "cancel"):
        assert builds_keys(name), name
    assert not builds_keys("discard")  # its keys are all declared


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_a_script_that_builds_keys_declares_a_key_that_never_exists(name: str) -> None:
    source = script_source(name)
    if not builds_keys(name):
        return
    declared = _declared(source)
    if name in FENCED_BY_NEW_KEYS:
        header = source.split("]]", 1)[0]  # enqueue_batch declares them per job: KEYS[3..]
        assert "idempotency record" in header and "job hash" in header, (name, declared)
        return
    assert any("prefix" in d for d in declared), (
        f"{name} builds key names in Lua but declares no key prefix (a key that never exists) "
        f"in KEYS: it could run on a half-migrated slot. Declared: {declared}")
    if name not in SINGLE_KEY_READ_ONLY:
        assert len(declared) >= 2, (name, declared)


def test_the_prefix_keys_passed_never_exist() -> None:
    """What the Python side passes as a prefix ends in ':' (nothing is stored under a bare
    prefix: every id, minute or dlqId appended is non-empty)."""
    from jobq.keys import QueueKeys

    q = QueueKeys(prefix="jobq", queue="email-queue")
    for prefix in (q.job_prefix, q.dlq_prefix, q.throughput_prefix):
        assert prefix.endswith(":"), prefix
