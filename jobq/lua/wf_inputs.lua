--[[
  wf_inputs: what a node's handler reads of its dependencies (JobContext.workflow_inputs):
  each dependency's key, state and result (succeeded) or error (anything else). Read only.

  KEYS[1] meta hash (the workflow's other keys are named from it, lib/workflow_state)
  KEYS[2] the workflow's key prefix "<prefix>:{wf:<id>}:" (never exists: the slot-migration
          fence of scripts that name keys, tests/test_script_fences.py)

  ARGV[1] node index

  Returns key, state letter, result JSON or error triples, in the order the node lists its
  dependencies; {} when the workflow or node is gone.
]]
--- @include "lib/workflow_state"
local k = wfKeys(KEYS[1], KEYS[2])
local spec = redis.call("HGET", k.nodes, ARGV[1])
if not spec then return {} end
local out = {}
for _, dep in ipairs(cjson.decode(spec).d or {}) do
  local idx = tostring(dep[1])
  local st = redis.call("HGET", k.st, idx) or ""
  local data = redis.call("HGET", st == "S" and k.res or k.err, idx) or ""
  out[#out + 1] = redis.call("HGET", k.names, idx) or idx
  out[#out + 1] = st
  out[#out + 1] = data
end
return out
