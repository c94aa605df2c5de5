--[[
  lib/trim: drop finished job records past the count or the age limit of their set (R12),
  oldest first. At most TRIM_BATCH of each kind per call, so one script stays short; the next
  call takes the rest. Shared by complete (completed jobs) and fail (failed jobs).
]]
local TRIM_BATCH = 1000
local function trimFinished(finishedKey, jobPrefix, keep, maxAgeMs, now)
  local old = redis.call("ZRANGEBYSCORE", finishedKey, "-inf", now - maxAgeMs,
    "LIMIT", 0, TRIM_BATCH)
  local excess = math.min(redis.call("ZCARD", finishedKey) - keep, TRIM_BATCH)
  if excess > 0 then
    for _, id in ipairs(redis.call("ZRANGE", finishedKey, 0, excess - 1)) do old[#old + 1] = id end
  end
  for _, id in ipairs(old) do
    redis.call("DEL", jobPrefix .. id)
    redis.call("ZREM", finishedKey, id)
  end
end
