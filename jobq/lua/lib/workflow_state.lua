--[[
  lib/workflow_state: a workflow's node states, the release of dependents and the end of the
  workflow, in its own slot (every key `<prefix>:{wf:<id>}:<name>`, named from the key prefix
  the script declares: the slot-migration fence). Shared by wf_create and wf_apply, so a node moves the same way whoever
  moves it.

  Node states ("st" hash, index -> letter): W waiting (deps unmet, no job yet), R released (its
  job was, or is about to be, created in its queue: waiting, delayed, running or retrying
  there), S succeeded, F failed (dead-lettered), C cancelled, D dep_failed (a required
  dependency ended unsuccessfully; it never ran), K skipped (an on_failure callback whose
  members all succeeded; it never ran, and counts as no failure). Counts per state are meta fields "n:<letter>".
  A node leaves R only by an outcome applied once per (node, epoch) (wf_apply's guard), and a
  W node is released only when its last unmet dependency settles, so each node's job is
  released once per epoch (R24).
]]
local WF_SUFFIXES = {"meta", "nodes", "keys", "names", "st", "rem", "out", "res", "err",
                     "ready", "kill", "ep"}

-- `metaKey` and `prefix` ("<prefix>:{wf:<id>}:") as the script's KEYS give them.
local function wfKeys(metaKey, prefix)
  local k = {}
  for _, s in ipairs(WF_SUFFIXES) do k[s] = prefix .. s end
  k.meta = metaKey
  return k
end

local function setNodeState(k, idx, from, to)
  redis.call("HSET", k.st, idx, to)
  redis.call("HINCRBY", k.meta, "n:" .. from, -1)
  redis.call("HINCRBY", k.meta, "n:" .. to, 1)
end

-- A node's callback role, from the head of its spec JSON (jobq/workflows/service.py writes
-- "cb" first when a node has one): "s" on_success, "f" on_failure, nil none.
local function callbackRole(spec)
  if string.sub(spec, 1, 7) == '{"cb":"' then return string.sub(spec, 8, 8) end
  return nil
end

-- Whether a dependency of node `spec` (JSON) ended unsuccessfully (F, C or D).
local function anyDepFailed(k, spec)
  for _, dep in ipairs(cjson.decode(spec).d or {}) do
    local s = redis.call("HGET", k.st, tostring(dep[1]))
    if s == "F" or s == "C" or s == "D" then return true end
  end
  return false
end

-- Release a waiting node: its job is created by the caller (wf_release in its queue's slot),
-- from the ready list, which holds it until the caller acknowledges (wf_ack). An on_failure
-- callback none of whose members failed is skipped instead (K, never runs): returns false,
-- and the caller settles its dependents as after a success.
local function releaseNode(k, idx)
  local spec = redis.call("HGET", k.nodes, idx) or ""
  if callbackRole(spec) == "f" and not anyDepFailed(k, spec) then
    setNodeState(k, idx, "W", "K")
    redis.call("HSET", k.err, idx, "skipped: no member failed")
    return false
  end
  setNodeState(k, idx, "W", "R")
  redis.call("RPUSH", k.ready, idx)
  return true
end

-- Cancel every node that has not ended: waiting ones here (they have no job), released ones
-- by their jobs (the kill list; their outcomes come back through the outbox). With `spare`
-- (fail fast), on_failure callbacks are left to run once their members have ended.
local function haltAll(k, why, spare)
  local st = redis.call("HGETALL", k.st)
  local spared = {}
  for i = 1, #st, 2 do
    local s = st[i + 1]
    if (s == "W" or s == "R") and spare
        and callbackRole(redis.call("HGET", k.nodes, st[i]) or "") == "f" then
      if s == "W" then spared[#spared + 1] = st[i] end
    elseif s == "W" then
      setNodeState(k, st[i], "W", "C")
      redis.call("HSET", k.err, st[i], why)
    elseif s == "R" then
      redis.call("RPUSH", k.kill, st[i])
    end
  end
  -- A released node still on the ready list is on the kill list now: not created, it gets a
  -- cancelled job in its place (wf_release), so no relay still holding the entry can start it.
  local keep = {}
  for _, idx in ipairs(redis.call("LRANGE", k.ready, 0, -1)) do
    if spare and callbackRole(redis.call("HGET", k.nodes, idx) or "") == "f" then
      keep[#keep + 1] = idx
    end
  end
  redis.call("DEL", k.ready)
  if #keep > 0 then redis.call("RPUSH", k.ready, unpack(keep)) end
  -- A spared callback now waits only on its members still released (their cancels come back).
  for _, idx in ipairs(spared) do
    local open = 0
    for _, dep in ipairs(cjson.decode(redis.call("HGET", k.nodes, idx)).d or {}) do
      if redis.call("HGET", k.st, tostring(dep[1])) == "R" then open = open + 1 end
    end
    redis.call("HSET", k.rem, idx, open)
    if open == 0 then releaseNode(k, idx) end
  end
end

-- Node `idx` ended with `outcome` (S, F, C, or D for a dep_failed node): settle each of its
-- waiting dependents by the edge's policy (r require, i ignore, c continue), breadth first
-- through dep_failed cascades.
local function settleDependents(k, idx, outcome)
  local todo = {{idx, outcome}}
  local n = 1
  while n <= #todo do
    local from, how = todo[n][1], todo[n][2]
    n = n + 1
    local out = redis.call("HGET", k.out, from)
    if out then
      for child, policy in string.gmatch(out, "(%d+):(%a)") do
        if redis.call("HGET", k.st, child) == "W" then
          if how == "S" or policy == "i" then
            if redis.call("HINCRBY", k.rem, child, -1) <= 0 and not releaseNode(k, child) then
              todo[#todo + 1] = {child, "S"}  -- a skipped on_failure: as if it succeeded
            end
          elseif policy == "c" then
            if not releaseNode(k, child) then todo[#todo + 1] = {child, "S"} end
          else
            setNodeState(k, child, "W", "D")
            redis.call("HSET", k.err, child,
              "dep_failed: " .. (redis.call("HGET", k.names, from) or from))
            todo[#todo + 1] = {child, "D"}
          end
        end
      end
    end
  end
end

-- When no node is waiting or released, the workflow ends: its state, its end time, and every
-- key it owns expires after its retention (the node jobs are their queues', trimmed as usual).
local function finishIfDone(k, now)
  local m = redis.call("HMGET", k.meta, "n:W", "n:R", "n:F", "n:C", "n:D", "state", "cancelled",
    "retentionS")
  if (tonumber(m[1]) or 0) + (tonumber(m[2]) or 0) > 0 then return end
  if m[6] ~= "running" and m[6] ~= "cancelling" then return end
  local final = "succeeded"
  if m[7] then
    final = "cancelled"
  elseif (tonumber(m[3]) or 0) + (tonumber(m[4]) or 0) + (tonumber(m[5]) or 0) > 0 then
    final = "failed"
  end
  redis.call("HSET", k.meta, "state", final, "endedAt", now)
  redis.call("DEL", k.ready, k.kill)
  for _, s in ipairs(WF_SUFFIXES) do
    redis.call("EXPIRE", k[s], tonumber(m[8]))
  end
end

-- A node's spec JSON, with its epoch ("e") once a reopen raised it above 0 (its job of that
-- epoch has another id, jobq/workflows/keys.py).
local function specAtEpoch(k, idx)
  local spec = redis.call("HGET", k.nodes, idx) or ""
  local ep = redis.call("HGET", k.ep, idx)
  if ep and ep ~= "0" and string.sub(spec, -1) == "}" then
    spec = string.sub(spec, 1, -2) .. ',"e":' .. ep .. "}"
  end
  return spec
end

-- What the caller still has to do: nodes on the ready list (create their jobs) and on the kill
-- list (cancel their jobs), at most `most` of each, with their specs.
local function followUps(k, applied, most)
  local state = redis.call("HGET", k.meta, "state") or ""
  local out = {applied, state}
  for _, list in ipairs({k.ready, k.kill}) do
    local ids = redis.call("LRANGE", list, 0, most - 1)
    out[#out + 1] = #ids
    for _, idx in ipairs(ids) do
      out[#out + 1] = idx
      out[#out + 1] = specAtEpoch(k, idx)
    end
  end
  return out
end

-- Chunked settling (large fan-outs): instead of settling every dependent of an ended node in
-- one script call, `settleLater` queues the node on the workflow's `settle` list ("<index>|
-- <outcome>|<position in its out string>") and `settleSome` settles at most `budget` edges
-- from there per call, moving the cursor in the same step as the states it changed, so each
-- edge is settled exactly once whatever call does it (wf_apply's "pending" mode continues;
-- the relay calls it until `settle` is empty). A dep_failed cascade queues its nodes too.
-- The list is deleted when the workflow ends (`dropSettleIfEnded`). `settleSome` answers the
-- budget it used.
local function settleKey(k)
  return string.sub(k.meta, 1, -5) .. "settle"  -- "<prefix>:{wf:<id>}:meta" -> ":settle"
end

local function settleLater(k, idx, outcome)
  redis.call("RPUSH", settleKey(k), idx .. "|" .. outcome .. "|1")
end

local function settleSome(k, budget)
  local key = settleKey(k)
  local done = 0
  while done < budget do
    local item = redis.call("LINDEX", key, 0)
    if not item then return done end
    local from, how, pos = string.match(item, "^(%d+)|(%a)|(%d+)$")
    pos = tonumber(pos)
    done = done + 1  -- an entry costs like an edge (a cascade of leaves: many entries)
    local out = redis.call("HGET", k.out, from) or ""
    -- A node reopened since it was queued (DLQ replay) no longer has this outcome: its
    -- dependents were recomputed by wf_reopen, so the rest of its entry is dropped.
    local cur = redis.call("HGET", k.st, from)
    if not (cur == how or (how == "S" and cur == "K")) then out = "" end
    local finished = false
    while true do
      if done >= budget then break end
      local s, e, child, policy = string.find(out, "(%d+):(%a)", pos)
      if not s then finished = true break end
      pos = e + 1
      done = done + 1
      if redis.call("HGET", k.st, child) == "W" then
        -- A skipped on_failure callback (releaseNode false) settles its own dependents as
        -- after a success.
        local skipped = false
        if how == "S" or policy == "i" then
          if redis.call("HINCRBY", k.rem, child, -1) <= 0 then
            skipped = not releaseNode(k, child)
          end
        elseif policy == "c" then
          skipped = not releaseNode(k, child)
        else
          setNodeState(k, child, "W", "D")
          redis.call("HSET", k.err, child,
            "dep_failed: " .. (redis.call("HGET", k.names, from) or from))
          if redis.call("HEXISTS", k.out, child) == 1 then
            redis.call("RPUSH", key, child .. "|D|1")
          end
        end
        if skipped and redis.call("HEXISTS", k.out, child) == 1 then
          redis.call("RPUSH", key, child .. "|S|1")
        end
      end
    end
    if finished then
      redis.call("LPOP", key)
    else
      redis.call("LSET", key, 0, from .. "|" .. how .. "|" .. pos)
    end
  end
  return done
end

local function settleBacklog(k)
  return redis.call("LLEN", settleKey(k))
end

local function dropSettleIfEnded(k)
  local state = redis.call("HGET", k.meta, "state")
  if state ~= "running" and state ~= "cancelling" and state ~= "creating" then
    redis.call("DEL", settleKey(k))
  end
end

-- Index node `idx` of a new workflow (wf_create, wf_create_chunk; its spec is stored by the
-- caller): its key both ways, its dependents, its unmet count and state. A root is released:
-- pushed onto `rootList` (`ready`, or the `roots` list a chunked creation holds until its seal).
local function indexNode(k, idx, key, out, deps, rootList)
  redis.call("HSET", k.keys, key, idx)
  redis.call("HSET", k.names, idx, key)
  if out ~= "" then redis.call("HSET", k.out, idx, out) end
  if deps > 0 then
    redis.call("HSET", k.rem, idx, deps)
    redis.call("HSET", k.st, idx, "W")
    redis.call("HINCRBY", k.meta, "n:W", 1)
  else
    redis.call("HSET", k.st, idx, "R")
    redis.call("HINCRBY", k.meta, "n:R", 1)
    redis.call("RPUSH", rootList, idx)
  end
end

-- One node outcome read from an outbox (wf_apply "apply", wf_apply_many): applied only when
-- the node is released (or waiting, for a cancel) and of that epoch, so each (node, epoch)
-- moves once (R24); its dependents settled (up to `budget` edges, the rest later); on a
-- failure with fail fast, the rest cancelled (after the settling: a spared on_failure's unmet
-- count is recomputed from what is still released). Answers 1 when it moved the node, and the
-- budget used.
local function applyOutcome(k, state, idx, epoch, outcome, data, budget)
  local cur = redis.call("HGET", k.st, idx)
  local ep = redis.call("HGET", k.ep, idx) or "0"
  if ep ~= epoch or not (cur == "R" or (cur == "W" and outcome == "C")) then return 0, 0 end
  setNodeState(k, idx, cur, outcome)
  redis.call("HSET", outcome == "S" and k.res or k.err, idx, data)
  settleLater(k, idx, outcome)
  local used = settleSome(k, budget)
  if outcome ~= "S" and state == "running" and redis.call("HGET", k.meta, "failFast") == "1" then
    redis.call("HSET", k.meta, "halted", idx)
    haltAll(k, "cancelled: fail fast after " .. (redis.call("HGET", k.names, idx) or idx), true)
  end
  return 1, used
end
