--[[
  wf_create_chunk: one bounded chunk of a large workflow's creation (R24, chunked creation).
  The first chunk stores the workflow `creating`: its nodes arrive chunk by chunk, nothing is
  on its ready list (so no relay, sweeper or cancel releases anything), and every key it has
  expires after ARGV[6] s unless the next chunk comes (an abandoned build does not stay). The
  chunk that brings the last node seals it in the same step: `running`, the roots moved onto
  the ready list at once (RENAME), the expiry lifted.

  A node already stored is skipped, so a chunk sent twice (R22) or a whole creation retried
  with the same key (the creator killed between chunks) resumes where the first stopped; the
  same key with another spec is a conflict, also mid-creation.

  KEYS[1] meta hash (the workflow's other keys are named from it, lib/workflow_state)
  KEYS[2] the workflow's key prefix "<prefix>:{wf:<id>}:" (never exists: the slot-migration
          fence of scripts that name keys, tests/test_script_fences.py)

  ARGV[1] fingerprint of the whole spec
  ARGV[2] the idempotency key as sent
  ARGV[3] "1" = fail fast
  ARGV[4] retention after the end (s)
  ARGV[5] number of nodes of the whole workflow
  ARGV[6] expiry of an unsealed workflow (s), renewed by each chunk
  ARGV[7..] per node: index, key, spec JSON, dependents ("" = none), number of dependencies

  Returns 0 created (this chunk sealed it), 5 still creating (more chunks to come), 1 duplicate
  (sealed before this call, same spec), -2 conflict (the key holds another spec).
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/workflow_state"
local CREATING = 5
local k = wfKeys(KEYS[1], KEYS[2])
k.roots = KEYS[2] .. "roots"
local total, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local known = redis.call("HGET", k.meta, "spec")
if known and known ~= ARGV[1] then return CONFLICT end
local now = redisNowMs()
if not known then
  -- Leftovers of an abandoned build whose meta expired first: never mixed into this one.
  for _, s in ipairs(WF_SUFFIXES) do redis.call("UNLINK", k[s]) end
  redis.call("UNLINK", k.roots)
  redis.call("HSET", k.meta, "spec", ARGV[1], "key", ARGV[2], "failFast", ARGV[3],
    "retentionS", ARGV[4], "state", "creating", "createdAt", now, "nodes", total,
    "n:W", 0, "n:R", 0, "n:S", 0, "n:F", 0, "n:C", 0, "n:D", 0)
elseif redis.call("HGET", k.meta, "state") ~= "creating" then
  return DUPLICATE
end

for at = 7, #ARGV, 5 do
  local idx = ARGV[at]
  -- A node stored already (a chunk sent again) is skipped. A root is released at the seal:
  -- held on the roots list until then, off the ready list.
  if redis.call("HSETNX", k.nodes, idx, ARGV[at + 2]) == 1 then
    indexNode(k, idx, ARGV[at + 1], ARGV[at + 3], tonumber(ARGV[at + 4]), k.roots)
  end
end

if redis.call("HLEN", k.nodes) < total then
  for _, s in ipairs(WF_SUFFIXES) do redis.call("EXPIRE", k[s], ttl) end
  redis.call("EXPIRE", k.roots, ttl)
  return CREATING
end
for _, s in ipairs(WF_SUFFIXES) do redis.call("PERSIST", k[s]) end
redis.call("HSET", k.meta, "state", "running", "sealedAt", now)
if redis.call("EXISTS", k.roots) == 1 then
  redis.call("PERSIST", k.roots)  -- RENAME would carry its expiry over
  redis.call("RENAME", k.roots, k.ready)
end
finishIfDone(k, now)
return CREATED
