--[[
  lib/clock: the time from Redis, never from the calling process. Lease deadlines, expiry checks,
  backoff due times and every timestamp a job shows come from this one clock, so a pod whose
  clock is off can neither steal live leases nor stretch its own.
]]
local function redisNowMs()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
