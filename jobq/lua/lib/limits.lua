--[[
  lib/limits: may this job start now under its own limits (R17)? Called by claim for a job
  whose record names a rate key or a concurrency key; a job without either never comes here.
  - Concurrency: the running set "concKey" holds at most concMax jobs. A job over it is parked
    on "<concKey>:parked" (state stays waiting, no attempt spent) until lib/slots frees a slot.
  - Rate: the start log "rateKey" (zset of starts, score = ms) holds at most rateMax starts in
    any ratePerMs window (a sliding window, so no burst of 2N at a window's edge). A job over it
    waits in `delayed` (heldBy = rate, counted in <base>:limited) until the oldest start leaves
    the window; claim then promotes it first in line. A slot it may have been woken for is
    passed on (lib/slots).
  Keys of the wrong type (a job stored before flow names were escaped, R21) are checked before
  anything is written, and that limit is not applied: the job runs rather than being lost.
  Returns nil (started: its slot and its start are recorded), "concurrency" or "rate".
]]
--- @include "lib/slots"
local function admitLimited(base, delayedKey, jobKey, jobId, now, rateKey, rateMax, ratePerMs,
                            concKey, concMax)
  if concKey and not (keyIs(concKey, "set") and keyIs(concKey .. ":parked", "list")) then
    concKey = nil
  end
  if rateKey and not keyIs(rateKey, "zset") then rateKey = nil end
  if concKey and redis.call("SCARD", concKey) >= tonumber(concMax) then
    redis.call("LPUSH", concKey .. ":parked", jobId)
    redis.call("INCR", base .. ":parked")
    redis.call("HSET", jobKey, "heldBy", "concurrency")
    return "concurrency"
  end
  if rateKey then
    local per = tonumber(ratePerMs)
    redis.call("ZREMRANGEBYSCORE", rateKey, "-inf", now - per)
    if redis.call("ZCARD", rateKey) >= tonumber(rateMax) then
      local oldest = redis.call("ZRANGE", rateKey, 0, 0, "WITHSCORES")
      local due = tonumber(oldest[2]) + per
      redis.call("HSET", jobKey, "state", "delayed", "readyAt", due, "heldBy", "rate")
      redis.call("ZADD", delayedKey, due, jobId)
      redis.call("INCR", base .. ":limited")
      if concKey then passWake(base, concKey, concMax) end
      return "rate"
    end
    redis.call("ZADD", rateKey, now, jobId .. ":" .. now)
    redis.call("PEXPIRE", rateKey, per)
  end
  if concKey then redis.call("SADD", concKey, jobId) end
  return nil
end
