--[[
  claim: promote due delayed jobs, then lease up to N waiting jobs to one worker (R3).

  KEYS[1] wait list
  KEYS[2] active zset           (score = lease deadline, ms)
  KEYS[3] delayed zset          (score = due time, ms)
  KEYS[4] job hash key prefix   (job key = prefix .. jobId; same hash tag as the lists)
  KEYS[5] paused flag           (present = the queue is paused)

  ARGV[1] most jobs to lease
  ARGV[2] lease length (ms)
  ARGV[3] worker id

  Returns {now (ms, Redis's clock), nextDelayedDue (ms, -1 = none), then per leased job:
           jobId, token, type, payload, attempts, maxAttempts, backoff, readyAt, timeoutS}
  The lease token is "<worker>:<attempt>", unique per attempt; every later write checks it.
  Returns -4 (PAUSED) and leases nothing while the queue is paused.
]]
--- @include "lib/clock"
--- @include "lib/codes"
local waitKey, activeKey, delayedKey, jobPrefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pausedKey = KEYS[5]
local most, leaseMs, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local rcall = redis.call
if rcall("EXISTS", pausedKey) == 1 then return PAUSED end
local now = redisNowMs()

-- At most 1000 promotions per call keep the script short; the rest go on the next claim.
local due = rcall("ZRANGEBYSCORE", delayedKey, "-inf", now, "WITHSCORES", "LIMIT", 0, 1000)
for i = 1, #due, 2 do
  rcall("ZREM", delayedKey, due[i])
  rcall("HSET", jobPrefix .. due[i], "state", "waiting", "readyAt", due[i + 1])
  rcall("LPUSH", waitKey, due[i])
end

local out = {now, -1}
local ids = rcall("RPOP", waitKey, most)
if ids then
  for _, jobId in ipairs(ids) do
    local jobKey = jobPrefix .. jobId
    -- A job cancelled while waiting left the list in the same script; this guards the rest.
    local state = rcall("HGET", jobKey, "state")
    if state and state ~= "cancelled" then
      local attempt = rcall("HINCRBY", jobKey, "attempts", 1)
      local token = worker .. ":" .. attempt
      rcall("HSET", jobKey, "state", "active", "token", token,
        "h:" .. attempt, cjson.encode({start = now, worker = worker}))
      rcall("HSETNX", jobKey, "processedAt", now)
      rcall("ZADD", activeKey, now + leaseMs, jobId)
      local f = rcall("HMGET", jobKey, "type", "payload", "maxAttempts", "backoff", "readyAt", "timeoutS")
      out[#out + 1] = jobId
      out[#out + 1] = token
      out[#out + 1] = f[1]
      out[#out + 1] = f[2]
      out[#out + 1] = attempt
      out[#out + 1] = f[3]
      out[#out + 1] = f[4]
      out[#out + 1] = f[5]
      out[#out + 1] = f[6] or ""
    end
  end
end

local nextDue = rcall("ZRANGE", delayedKey, 0, 0, "WITHSCORES")
if nextDue[2] then out[2] = tonumber(nextDue[2]) end
return out
