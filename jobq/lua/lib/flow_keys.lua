--[[
  lib/flow_keys: the flow-control keys of a queue are named from its base "<prefix>:{<queue>}",
  which a script recovers from a key it is given (the job hash prefix "<base>:job:" or the wait
  list "<base>:wait"), so every script keeps its KEYS and every key stays in the queue's hash
  tag. jobq.keys.QueueKeys names the same keys (a test compares them):
    <base>:wait           waiting jobs of the default priority (workers RPOP, producers LPUSH)
    <base>:wait:<p>       waiting jobs of priority p (0-9, p ~= default)
    <base>:levels         zset of the non-default priorities that may hold jobs (score = p)
    <base>:bell           list, present when a wait list may hold jobs (workers block on it)
    <base>:limited        count of delayed jobs held back by a rate limit (heldBy = rate)
    <base>:parked         count of jobs parked by a concurrency limit
    <base>:rate           the queue's start log (zset, score = ms) for its rate limit
]]
local function queueBase(key, suffix)
  return string.sub(key, 1, #key - #suffix)
end
