--[[
  reclaim: take back jobs whose lease expired (R4: worker killed, node lost). Each is re-leased
  to the sweeping worker under a fresh token, which then ends the attempt through `fail` with
  outcome "lost". If the sweeper dies in between, the new lease expires too and the next sweep
  takes the job again: nothing stays in `active` forever. Safe to run from every worker at once.

  KEYS[1] active zset           (score = lease deadline, ms)
  KEYS[2] job hash key prefix

  ARGV[1] lease length (ms)
  ARGV[2] sweeping worker id
  ARGV[3] most jobs to take

  Returns per job taken: jobId, new token, previous worker, attempt, maxAttempts, backoff, type
]]
--- @include "lib/clock"
--- @include "lib/slots"
local activeKey, jobPrefix = KEYS[1], KEYS[2]
local leaseMs, worker, most = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local rcall = redis.call
local now = redisNowMs()

local out = {}
for _, jobId in ipairs(rcall("ZRANGEBYSCORE", activeKey, "-inf", now, "LIMIT", 0, most)) do
  local jobKey = jobPrefix .. jobId
  local f = rcall("HMGET", jobKey, "token", "attempts", "maxAttempts", "backoff", "type", "concKey")
  if not f[2] then
    rcall("ZREM", activeKey, jobId)  -- the record is gone; nothing to recover
  else
    local previous = string.match(f[1] or "", "^(.*):[^:]*$") or ""
    local token = worker .. ":reclaim:" .. f[2] .. ":" .. now
    rcall("HSET", jobKey, "token", token)
    rcall("ZADD", activeKey, now + leaseMs, jobId)
    releaseSlot(queueBase(jobPrefix, ":job:"), f[6], jobId)  -- the dead worker's slot
    if f[6] then  -- its run ends here, with the slot it held (fail keeps this end)
      local raw = rcall("HGET", jobKey, "h:" .. f[2])
      local entry = raw and cjson.decode(raw) or {}
      entry["end"] = now
      rcall("HSET", jobKey, "h:" .. f[2], cjson.encode(entry))
    end
    for _, v in ipairs({jobId, token, previous, f[2], f[3], f[4], f[5]}) do out[#out + 1] = v end
  end
end
return out
