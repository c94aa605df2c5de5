--[[
  lib/attempt: end the current attempt of a leased job. Its history entry "h:<attempt>" gets its
  end time, outcome and error, the lease token is cleared (every later write with it is refused)
  and the job leaves `active`. Shared by complete and fail, so every attempt ends the same way.
]]
local function closeAttempt(activeKey, jobKey, jobId, attempt, now, outcome, reason)
  local entryKey = "h:" .. attempt
  local raw = redis.call("HGET", jobKey, entryKey)
  local entry = raw and cjson.decode(raw) or {}
  entry["end"] = entry["end"] or now  -- reclaim may have ended a slot-holding run already
  entry["outcome"] = outcome
  entry["error"] = reason  -- nil for a success: the field stays out
  redis.call("HSET", jobKey, entryKey, cjson.encode(entry), "token", "")
  redis.call("ZREM", activeKey, jobId)
end
