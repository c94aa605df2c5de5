--[[
  lib/give_back: put a leased job back first in line without spending its attempt: a shutdown
  hand-back (R9), or a job leased by a claim whose answer its worker never received (R22). The
  attempt's history entry moves to "b:<n>" (n counts the job's hand-backs) with its end time,
  its attempt number and handedBack = true: the history shows it, and the number is free for
  the next run. A job whose cancel was requested ends `cancelled` instead (R23).
  Returns "handed", "cancelled", or nil when `token` is no longer the job's lease.
]]
--- @include "lib/attempt"
--- @include "lib/slots"
--- @include "lib/workflow_outbox"
local function giveBack(base, activeKey, cancelledKey, jobId, token, now)
  local rcall = redis.call
  local jobKey = base .. ":job:" .. jobId
  local f = rcall("HMGET", jobKey, "token", "attempts", "cancelRequested", "priority", "concKey")
  if f[1] ~= token then return nil end
  if f[3] then
    closeAttempt(activeKey, jobKey, jobId, f[2], now, "cancelled", "cancelled on request", token)
    releaseSlot(base, f[5], jobId)
    rcall("HSET", jobKey, "state", "cancelled", "finishedAt", now)
    rcall("ZADD", cancelledKey, now, jobId)
    workflowOutcome(base .. ":job:", jobId, "C", "cancelled on request", now)
    return "cancelled"
  end
  local raw = rcall("HGET", jobKey, "h:" .. f[2])
  local entry = raw and cjson.decode(raw) or {}
  entry["end"], entry["handedBack"], entry["attempt"] = now, true, tonumber(f[2])
  rcall("HSET", jobKey, "b:" .. rcall("HINCRBY", jobKey, "handbacks", 1), cjson.encode(entry))
  rcall("HDEL", jobKey, "h:" .. f[2])
  rcall("HINCRBY", jobKey, "attempts", -1)
  rcall("HSET", jobKey, "state", "waiting", "token", "", "readyAt", now)
  rcall("ZREM", activeKey, jobId)
  releaseSlot(base, f[5], jobId)
  pushWaiting(base, jobId, f[4], true)
  return "handed"
end
