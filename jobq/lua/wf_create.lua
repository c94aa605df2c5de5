--[[
  wf_create: store a workflow once per idempotency key (R24): its nodes, edges and states, its
  root nodes released (on its ready list, whose jobs the caller then creates). Everything is in
  the workflow's slot. The graph was checked by the caller (jobq/workflows/graph.py: unknown
  dependencies, cycles), which also computed each node's dependents.

  KEYS[1] meta hash (the workflow's other keys are named from it, lib/workflow_state: nodes
          index -> spec JSON, keys node key -> index, names index -> node key, st, rem unmet
          dependencies, out dependents "<index>:<policy letter>,...", ready list)
  KEYS[2] the workflow's key prefix "<prefix>:{wf:<id>}:" (never exists: the slot-migration
          fence of scripts that name keys, tests/test_script_fences.py)

  ARGV[1] fingerprint of the spec
  ARGV[2] the idempotency key as sent
  ARGV[3] "1" = fail fast (the first failure cancels the rest)
  ARGV[4] retention after the end (s)
  ARGV[5..] per node: key, spec JSON, dependents ("" = none), number of dependencies

  Returns 0 created, 1 duplicate (same spec), -2 conflict (the key holds another spec). Run
  twice (R22), the second execution finds the first's workflow: duplicate, nothing changed.
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/workflow_state"
local k = wfKeys(KEYS[1], KEYS[2])
local known = redis.call("HGET", k.meta, "spec")
if known then return known == ARGV[1] and DUPLICATE or CONFLICT end

local now = redisNowMs()
local nodes = (#ARGV - 4) / 4
redis.call("HSET", k.meta, "spec", ARGV[1], "key", ARGV[2], "failFast", ARGV[3],
  "retentionS", ARGV[4], "state", "running", "createdAt", now, "nodes", nodes,
  "n:W", 0, "n:R", 0, "n:S", 0, "n:F", 0, "n:C", 0, "n:D", 0)
for i = 0, nodes - 1 do
  local at = 5 + i * 4
  local idx = tostring(i)
  redis.call("HSET", k.nodes, idx, ARGV[at + 1])
  indexNode(k, idx, ARGV[at], ARGV[at + 2], tonumber(ARGV[at + 3]), k.ready)
end
finishIfDone(k, now)  -- an empty workflow has ended already
return CREATED
