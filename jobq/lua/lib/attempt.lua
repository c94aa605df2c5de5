--[[
  lib/attempt: end the current attempt of a leased job. Its history entry "h:<attempt>" gets its
  end time, outcome and error, the lease token is cleared (every later write with it is refused)
  and the job leaves `active`. Shared by complete and fail, so every attempt ends the same way.
  The token that ended it is kept as "endToken": a second execution of the same call (a
  re-send, R22) recognises its own write and answers as the first did, instead of "lease lost".
]]
local function closeAttempt(activeKey, jobKey, jobId, attempt, now, outcome, reason, token)
  local entryKey = "h:" .. attempt
  local raw = redis.call("HGET", jobKey, entryKey)
  local entry = raw and cjson.decode(raw) or {}
  entry["end"] = entry["end"] or now  -- reclaim may have ended a slot-holding run already
  entry["outcome"] = outcome
  entry["error"] = reason  -- nil for a success: the field stays out
  redis.call("HSET", jobKey, entryKey, cjson.encode(entry), "token", "", "endToken", token)
  redis.call("ZREM", activeKey, jobId)
end
