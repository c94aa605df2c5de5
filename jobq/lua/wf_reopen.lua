--[[
  wf_reopen: run nodes of an ended (or still running, for a replay) workflow again, in its
  slot. Each reopened node gets a new epoch, so its next job has a new id
  (jobq/workflows/keys.py: trimmed or ended jobs of an older epoch never collide) and an
  outcome of an older epoch is refused by wf_apply's guard (R24). Modes:
  - "replay": node ARGV[2], whose job of epoch ARGV[3] was dead-lettered and is replayed from
    the DLQ. Reopened when it is still of that epoch and failed (or released: its failure is
    still on its way through the outbox, and will be refused as an old epoch's). Refused when
    the workflow was cancelled (retry it instead).
  - "failed_only": every failed, cancelled or dep_failed node.
  - "failed_and_downstream": those, and every node downstream of them.
  - "all": every node.
  The retries are refused while the workflow runs or cancels. An on_success callback that
  succeeded is never reopened (it fires at most once ever); an on_failure callback after a
  reopened node is reopened with it (a new episode may fail again).

  Then every reopened node waits again, with its unmet count recomputed from its
  dependencies' states, and so does every waiting dependent of one (its count must include
  the reopened dependency again): a node whose dependencies have all ended is released (roots
  at once), one with a failed `require` dependency is dep_failed again, with the cascade of
  lib/workflow_state. A workflow that had ended runs again: its keys lose their expiry, its
  end time goes, its episode counts up.

  KEYS[1] meta hash (the other keys of the workflow are named from it, lib/workflow_state)
  KEYS[2] the workflow's key prefix "<prefix>:{wf:<id>}:" (never exists: the slot-migration
          fence of scripts that name keys, tests/test_script_fences.py)

  ARGV[1] mode
  ARGV[2] node index        (replay)
  ARGV[3] the DLQ entry's epoch (replay)
  ARGV[4] most ready and kill entries answered

  Returns wf_apply's answer, whose first element is a code: 1 reopened, 0 nothing to reopen,
  2 replay of a node already reopened (by this replay before, or another), -1 refused (running
  or cancelling for a retry; cancelled for a replay), -3 no such node, -4 the node is not
  failed; then after both lists the replayed node's epoch (replay).
]]
--- @include "lib/clock"
--- @include "lib/workflow_state"
local k = wfKeys(KEYS[1], KEYS[2])
local mode, most = ARGV[1], tonumber(ARGV[4])
local state = redis.call("HGET", k.meta, "state")
if not state then return {0, ""} end
local now = redisNowMs()

local function answer(code, epoch)
  local out = followUps(k, code, most)
  if epoch then out[#out + 1] = epoch end
  return out
end

local st = {}
local raw = redis.call("HGETALL", k.st)
for i = 1, #raw, 2 do st[raw[i]] = raw[i + 1] end

-- The nodes to run again.
local chosen, isChosen = {}, {}
local function choose(idx)
  if not isChosen[idx] then
    isChosen[idx] = true
    chosen[#chosen + 1] = idx
  end
end
local function dependents(idx)
  local out = {}
  for child in string.gmatch(redis.call("HGET", k.out, idx) or "", "(%d+):%a") do
    out[#out + 1] = child
  end
  return out
end

if mode == "replay" then
  local idx, epoch = ARGV[2], tonumber(ARGV[3])
  local cur = st[idx]
  if not cur then return answer(-3) end
  local ep = tonumber(redis.call("HGET", k.ep, idx) or "0")
  if ep > epoch then return answer(2, ep) end
  if state == "cancelled" or state == "cancelling" then return answer(-1, ep) end
  if ep ~= epoch or (cur ~= "F" and cur ~= "R") then return answer(-4, ep) end
  choose(idx)
  -- Its dep_failed descendants (a cascade goes through dep_failed nodes only).
  local at = 1
  while at <= #chosen do
    for _, child in ipairs(dependents(chosen[at])) do
      if st[child] == "D" then choose(child) end
    end
    at = at + 1
  end
else
  if state == "running" or state == "cancelling" then return answer(-1) end
  for idx, s in pairs(st) do
    if mode == "all" or s == "F" or s == "C" or s == "D" then choose(idx) end
  end
  if mode == "failed_and_downstream" then
    local at = 1
    while at <= #chosen do
      for _, child in ipairs(dependents(chosen[at])) do choose(child) end
      at = at + 1
    end
  end
end

-- on_failure callbacks after a chosen node run again (a new episode); an on_success that
-- succeeded never does.
local specs = {}
local function specOf(idx)
  if not specs[idx] then specs[idx] = redis.call("HGET", k.nodes, idx) or "{}" end
  return specs[idx]
end
for _, idx in ipairs(chosen) do
  for _, child in ipairs(dependents(idx)) do
    if st[child] ~= "W" and callbackRole(specOf(child)) == "f" then choose(child) end
  end
end
local reopen = {}
for _, idx in ipairs(chosen) do
  if not (st[idx] == "S" and callbackRole(specOf(idx)) == "s") then
    reopen[#reopen + 1] = idx
  end
end
if #reopen == 0 then return answer(0) end

-- Every reopened node waits, under a new epoch, with no result or error of the last one.
local released = {}
for _, idx in ipairs(reopen) do
  if st[idx] ~= "W" then
    if st[idx] == "R" then released[#released + 1] = idx end
    setNodeState(k, idx, st[idx], "W")
    st[idx] = "W"
  end
  redis.call("HINCRBY", k.ep, idx, 1)
  redis.call("HDEL", k.res, idx)
  redis.call("HDEL", k.err, idx)
end
-- A replayed node still released is off the ready list: its new epoch is released below.
for _, idx in ipairs(released) do redis.call("LREM", k.ready, 0, idx) end

-- Recompute the unmet count of every reopened node and of every waiting dependent of one.
local todo, inTodo = {}, {}
local function recompute(idx)
  if not inTodo[idx] then
    inTodo[idx] = true
    todo[#todo + 1] = idx
  end
end
for _, idx in ipairs(reopen) do
  recompute(idx)
  for _, child in ipairs(dependents(idx)) do
    if st[child] == "W" then recompute(child) end
  end
end
local verdict = {}
for _, idx in ipairs(todo) do
  local open, bad, go = 0, nil, false
  local deps = cjson.decode(specOf(idx)).d or {}
  for _, dep in ipairs(deps) do
    local d = tostring(dep[1])
    local s = redis.call("HGET", k.st, d)
    if s == "W" or s == "R" then
      open = open + 1
    elseif s == "F" or s == "C" or s == "D" then
      if dep[2] == "r" then bad = bad or d elseif dep[2] == "c" then go = true end
    end
  end
  if #deps > 0 then redis.call("HSET", k.rem, idx, open) end  -- roots have no count
  verdict[idx] = {bad, go}
end
for _, idx in ipairs(todo) do
  if redis.call("HGET", k.st, idx) == "W" then
    -- The count as it is now: a cascade above may have settled a dependency meanwhile.
    local open = tonumber(redis.call("HGET", k.rem, idx) or "0")
    local bad, go = verdict[idx][1], verdict[idx][2]
    if bad then
      setNodeState(k, idx, "W", "D")
      redis.call("HSET", k.err, idx, "dep_failed: " .. (redis.call("HGET", k.names, bad) or bad))
      settleDependents(k, idx, "D")
    elseif go or open == 0 then
      if not releaseNode(k, idx) then settleDependents(k, idx, "S") end
    end
  end
end

-- The workflow runs again.
if state ~= "running" then
  redis.call("HSET", k.meta, "state", "running")
  redis.call("HDEL", k.meta, "endedAt", "cancelled", "halted")
  redis.call("HINCRBY", k.meta, "episode", 1)
  for _, s in ipairs(WF_SUFFIXES) do redis.call("PERSIST", k[s]) end
else
  redis.call("HDEL", k.meta, "halted")
end
finishIfDone(k, now)
local epoch = nil
if mode == "replay" then epoch = redis.call("HGET", k.ep, ARGV[2]) end
return answer(1, epoch)
