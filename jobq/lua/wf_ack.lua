--[[
  wf_ack: the caller has created the jobs of these ready nodes (or cancelled those of these
  kill entries) in their queues: take them off the workflow's lists. Removing an entry that
  is gone changes nothing, so this is safe to run twice.

  KEYS[1] ready list
  KEYS[2] kill list

  ARGV[1] number of ready entries
  ARGV[2..] the ready entries, then the kill entries

  Returns the number of entries removed.
]]
local n, removed = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  -- Count 1: an index is on a list once, and the entries handled are at its head, so each
  -- LREM stops early instead of scanning a long list (a large group's roots).
  removed = removed + redis.call("LREM", i <= n + 1 and KEYS[1] or KEYS[2], 1, ARGV[i])
end
return removed
