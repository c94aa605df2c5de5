--[[
  lib/waiting: put a job in line. One wait list per priority (0-9, higher runs first, default
  DEFAULT_PRIORITY in "<base>:wait"); claim takes from the highest non-empty one, FIFO within
  one. Every script that makes a job wait comes here (enqueue, replay, promotion of due jobs,
  hand-back, a freed concurrency slot), so none can skip the priority or the bell.
  `front` puts the job first in line (RPUSH: workers RPOP). A list that was empty rings the bell
  (and a non-default one joins <base>:levels): no extra call while a backlog exists.
]]
--- @include "lib/flow_keys"
local DEFAULT_PRIORITY = 5
local function waitLevelKey(base, p)
  if p == DEFAULT_PRIORITY then return base .. ":wait" end
  return base .. ":wait:" .. p
end
local function pushWaiting(base, jobId, priority, front)
  local p = tonumber(priority) or DEFAULT_PRIORITY
  local n = redis.call(front and "RPUSH" or "LPUSH", waitLevelKey(base, p), jobId)
  if n == 1 then
    if p ~= DEFAULT_PRIORITY then redis.call("ZADD", base .. ":levels", p, p) end
    if redis.call("EXISTS", base .. ":bell") == 0 then redis.call("LPUSH", base .. ":bell", 1) end
  end
end
