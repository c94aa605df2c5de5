--[[
  wf_add_nodes: a running node adds keyed nodes to its own workflow (R24, dynamic nodes),
  before it completes, in the workflow's slot. Refused unless the workflow is running and the
  adding node is released at the caller's epoch (its job not ended: the workflow cannot end in
  between, and an outcome applied already fences a late add). The caller checked its lease in
  the queue's slot first.

  A new node may depend on the adding node, on existing nodes and on new nodes listed before
  it (the caller sorts them); `waited_by` nodes (still waiting) also wait on the new nodes
  nothing new depends on (a chord's callback waiting for a fan-out added at run time). A key
  added already with the same spec (its "af" fingerprint) is skipped, so a retried handler adds
  nothing twice; the same key with another spec, or an original node's key, is a conflict.
  Everything is checked before the first write.

  KEYS[1] meta hash (the workflow's other keys are named from it, lib/workflow_state)
  KEYS[2] the workflow's key prefix "<prefix>:{wf:<id>}:" (never exists: the slot-migration
          fence of scripts that name keys, tests/test_script_fences.py)

  ARGV[1] the adding node's index
  ARGV[2] its epoch
  ARGV[3] number of new nodes
  ARGV[4] number of waited_by keys
  ARGV[5..] per new node: key, add fingerprint, spec JSON ending in "d":[]}, dependencies
            "<policy letter><key>" each, joined by "\n" ("" = none); then the waited_by keys

  Returns {0, nodes added} | {1, 0} nothing new | {-2, key} conflict | {-4, why} refused.
]]
--- @include "lib/clock"
--- @include "lib/workflow_state"
local k = wfKeys(KEYS[1], KEYS[2])
local adder, epoch = ARGV[1], ARGV[2]
local n, m = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call("HGET", k.meta, "state")
if state ~= "running" then return {-4, "the workflow is " .. (state or "gone")} end
if redis.call("HGET", k.st, adder) ~= "R" or (redis.call("HGET", k.ep, adder) or "0") ~= epoch then
  return {-4, "the adding node has ended"}
end

-- Check everything first.
local new, newIdx = {}, {}
local nextIdx = tonumber(redis.call("HGET", k.meta, "nodes"))
for i = 0, n - 1 do
  local at = 5 + i * 4
  local key, af, spec, deps = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local known = redis.call("HGET", k.keys, key)
  if known then
    local stored = redis.call("HGET", k.nodes, known) or ""
    if not string.find(stored, '"af":"' .. af .. '"', 1, true) then return {-2, key} end
  else
    local node = {key = key, spec = spec, idx = tostring(nextIdx), deps = {}}
    for line in string.gmatch(deps, "[^\n]+") do
      local policy, dep = string.sub(line, 1, 1), string.sub(line, 2)
      local idx = newIdx[dep] or redis.call("HGET", k.keys, dep)
      if not idx then return {-4, "node " .. key .. " depends on unknown node " .. dep} end
      node.deps[#node.deps + 1] = {idx, policy}
    end
    newIdx[key] = node.idx
    new[#new + 1] = node
    nextIdx = nextIdx + 1
  end
end
if #new == 0 then return {1, 0} end
local waitedBy = {}
for j = 1, m do
  local key = ARGV[4 + n * 4 + j]
  local idx = redis.call("HGET", k.keys, key)
  if not idx or redis.call("HGET", k.st, idx) ~= "W" then
    return {-4, "waited_by node " .. key .. " is not waiting"}
  end
  waitedBy[#waitedBy + 1] = idx
end
if #waitedBy > 0 then
  -- A waited_by node must not be an ancestor of the adding node (that would be a cycle).
  local seen, todo, visits = {[adder] = true}, {adder}, 0
  local banned = {}
  for _, idx in ipairs(waitedBy) do banned[idx] = true end
  while #todo > 0 do
    local cur = table.remove(todo)
    visits = visits + 1
    if visits > 10000 then return {-4, "too many ancestors to check waited_by"} end
    if banned[cur] then return {-4, "a waited_by node is an ancestor of the adding node"} end
    local spec = redis.call("HGET", k.nodes, cur)
    for dep in string.gmatch(spec and string.match(spec, '"d":(%b[])}$') or "", "%[(%d+),") do
      if not seen[dep] then seen[dep] = true todo[#todo + 1] = dep end
    end
  end
end

-- Write: each new node settles against what its dependencies did so far.
local now = redisNowMs()
local depended = {}
local function appendOut(from, edge)
  local out = redis.call("HGET", k.out, from)
  redis.call("HSET", k.out, from, out and (out .. "," .. edge) or edge)
end
for _, node in ipairs(new) do
  local open, failedBy, go = 0, nil, false
  local d = {}
  for _, dep in ipairs(node.deps) do
    local idx, policy = dep[1], dep[2]
    depended[idx] = true
    d[#d + 1] = "[" .. idx .. ',"' .. policy .. '"]'
    local st = redis.call("HGET", k.st, idx)
    if st == "W" or st == "R" then
      open = open + 1
      appendOut(idx, node.idx .. ":" .. policy)
    elseif st ~= "S" and policy == "r" then
      failedBy = failedBy or idx
    elseif st ~= "S" and policy == "c" then
      go = true
    end
  end
  local spec = string.sub(node.spec, 1, -4) .. "[" .. table.concat(d, ",") .. "]}"
  redis.call("HSET", k.nodes, node.idx, spec)
  redis.call("HSET", k.keys, node.key, node.idx)
  redis.call("HSET", k.names, node.idx, node.key)
  if failedBy then
    redis.call("HSET", k.st, node.idx, "D")
    redis.call("HINCRBY", k.meta, "n:D", 1)
    redis.call("HSET", k.err, node.idx,
      "dep_failed: " .. (redis.call("HGET", k.names, failedBy) or failedBy))
  elseif go or open == 0 then
    redis.call("HSET", k.st, node.idx, "R")
    redis.call("HINCRBY", k.meta, "n:R", 1)
    redis.call("RPUSH", k.ready, node.idx)
  else
    redis.call("HSET", k.st, node.idx, "W")
    redis.call("HINCRBY", k.meta, "n:W", 1)
    redis.call("HSET", k.rem, node.idx, open)
  end
end
redis.call("HSET", k.meta, "nodes", nextIdx)

for _, target in ipairs(waitedBy) do
  local spec = redis.call("HGET", k.nodes, target)
  local extra = {}
  for _, node in ipairs(new) do
    if not depended[node.idx] then
      extra[#extra + 1] = "[" .. node.idx .. ',"r"]'
      appendOut(node.idx, target .. ":r")
      local st = redis.call("HGET", k.st, node.idx)
      if st == "W" or st == "R" then
        redis.call("HINCRBY", k.rem, target, 1)
      else
        settleLater(k, node.idx, st)  -- born dep_failed: the waiting node follows its policy
      end
    end
  end
  local head = string.sub(spec, 1, -3)
  local sep = string.sub(head, -1) == "[" and "" or ","
  redis.call("HSET", k.nodes, target, head .. sep .. table.concat(extra, ",") .. "]}")
end
settleSome(k, 1000)
return {0, #new}
