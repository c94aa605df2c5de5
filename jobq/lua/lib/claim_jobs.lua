--[[
  lib/claim_jobs: promote due delayed jobs, then lease up to `most` waiting jobs to one worker
  (R3), highest priority first and FIFO within one, under the queue's rate limit and each job's
  own limits (R17): a job held back by a limit spends no attempt, and the jobs behind it still
  come. Shared by claim and complete_claim (a worker's completions and its next claim in one
  call), so the two lease exactly alike.

  `k` holds the keys: active
  (score = lease deadline, ms), delayed (score = due time; rate-limited jobs wait here too),
  jobPrefix (job key = prefix .. jobId), paused (present = paused), events (one "active" entry
  per call, lib/events). `queueMax` starts per `queuePerMs` is the queue's rate (0 = none).

  Returns {now (ms, Redis's clock), nextDue (ms, -1 = none: the next delayed job, or when the
  queue's rate window opens), held by a rate limit, held by a concurrency limit, throttled (1 =
  jobs wait but the queue's rate allows none now), then per leased job: jobId, token, type,
  payload, attempts, maxAttempts, backoff, readyAt, timeoutS}, or PAUSED (leasing nothing).
  The lease token is "<worker>:<attempt>", unique per attempt; every later write checks it.
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/events"
--- @include "lib/waiting"
--- @include "lib/limits"
local function claimJobs(k, most, leaseMs, worker, queueMax, queuePerMs)
  local activeKey, delayedKey, jobPrefix = k.active, k.delayed, k.jobPrefix
  local pausedKey, eventsKey = k.paused, k.events
  local rcall = redis.call
  local CLAIM_SCAN_EXTRA = 200  -- held-back jobs one call may set aside beyond the N it leases
  if rcall("EXISTS", pausedKey) == 1 then return PAUSED end
  local now = redisNowMs()
  local base = queueBase(jobPrefix, ":job:")
  local rateKey = base .. ":rate"

  -- At most 1000 promotions per call keep the script short; the rest go on the next claim.
  -- Jobs held by a rate limit go first in line (they were due already), the earliest due first
  -- (pushed to the front in reverse); the others last in line, the earliest first.
  local due = rcall("ZRANGEBYSCORE", delayedKey, "-inf", now, "WITHSCORES", "LIMIT", 0, 1000)
  local held = {}
  for i = 1, #due, 2 do
    rcall("ZREM", delayedKey, due[i])
    local jobKey = jobPrefix .. due[i]
    local f = rcall("HMGET", jobKey, "priority", "heldBy")
    rcall("HSET", jobKey, "state", "waiting", "readyAt", due[i + 1])
    if f[2] == "rate" then
      rcall("HDEL", jobKey, "heldBy")
      rcall("DECR", base .. ":limited")
      held[#held + 1] = {due[i], f[1]}
    else
      pushWaiting(base, due[i], f[1], false)
    end
  end
  for i = #held, 1, -1 do pushWaiting(base, held[i][1], held[i][2], true) end

  local out = {now, -1, 0, 0, 0}
  local need, throttledUntil = most, nil
  if queueMax > 0 then
    rcall("ZREMRANGEBYSCORE", rateKey, "-inf", now - queuePerMs)
    local used = rcall("ZCARD", rateKey)
    if used >= queueMax then
      need = 0
      throttledUntil = tonumber(rcall("ZRANGE", rateKey, 0, 0, "WITHSCORES")[2]) + queuePerMs
    else
      need = math.min(need, queueMax - used)
    end
  end

  -- Highest priority first: the non-default levels above the default, the default, the rest.
  local order, below = {}, {}
  for _, p in ipairs(rcall("ZREVRANGE", base .. ":levels", 0, -1)) do
    p = tonumber(p)
    if p > DEFAULT_PRIORITY then order[#order + 1] = p else below[#below + 1] = p end
  end
  order[#order + 1] = DEFAULT_PRIORITY
  for _, p in ipairs(below) do order[#order + 1] = p end

  -- Lease one popped job, unless its own limits hold it back; true when leased.
  local function leaseOne(jobId)
    local jobKey = jobPrefix .. jobId
    local f = rcall("HMGET", jobKey, "state", "type", "payload", "maxAttempts", "backoff",
      "readyAt", "timeoutS", "flow", "cancelRequested")
    -- A job cancelled while waiting left the list in the same script; this guards the rest.
    if not f[1] or f[1] == "cancelled" then return false end
    if f[9] then  -- asked to cancel while it ran, then put back in line: it never starts (R23)
      rcall("HSET", jobKey, "state", "cancelled", "finishedAt", now)
      rcall("ZADD", base .. ":cancelled", now, jobId)
      return false
    end
    if f[8] == "1" then  -- it has limits: one more read, for limited jobs only
      local l = rcall("HMGET", jobKey, "rateKey", "rateMax", "ratePerMs", "concKey", "concMax")
      local by = admitLimited(base, delayedKey, jobKey, jobId, now, l[1], l[2], l[3], l[4], l[5])
      if by == "rate" then out[3] = out[3] + 1; return false end
      if by == "concurrency" then out[4] = out[4] + 1; return false end
    end
    local attempt = rcall("HINCRBY", jobKey, "attempts", 1)
    local token = worker .. ":" .. attempt
    rcall("HSET", jobKey, "state", "active", "token", token,
      "h:" .. attempt, cjson.encode({start = now, worker = worker}))
    rcall("HSETNX", jobKey, "processedAt", now)
    rcall("ZADD", activeKey, now + leaseMs, jobId)
    for _, v in ipairs({jobId, token, f[2], f[3], attempt, f[4], f[5], f[6], f[7] or ""}) do
      out[#out + 1] = v
    end
    return true
  end

  local leased = {}  -- job ids, for the event stream
  local budget = need + CLAIM_SCAN_EXTRA  -- jobs one call may look at, held ones included
  local started, left = {}, false
  for _, p in ipairs(order) do
    local listKey = waitLevelKey(base, p)
    local empty = false
    while need > 0 and budget > 0 do
      local take = math.min(need, budget)
      local ids = rcall("RPOP", listKey, take) or {}
      budget = budget - #ids
      for _, jobId in ipairs(ids) do
        if leaseOne(jobId) then
          need = need - 1
          started[#started + 1] = jobId .. ":" .. now
          leased[#leased + 1] = jobId
        end
      end
      -- Short: the list is empty, unless a job held back here passed its slot on (lib/slots).
      if #ids < take and rcall("LLEN", listKey) == 0 then empty = true; break end
    end
    if empty and p ~= DEFAULT_PRIORITY then rcall("ZREM", base .. ":levels", p) end
    if not empty then left = true; break end
  end
  if not left then rcall("DEL", base .. ":bell") end  -- nothing waits: workers block again

  if queueMax > 0 and #started > 0 then
    for i = 1, #started, 5000 do
      local chunk = {}
      for j = i, math.min(i + 4999, #started) do chunk[#chunk + 1] = now; chunk[#chunk + 1] = started[j] end
      rcall("ZADD", rateKey, unpack(chunk))
    end
    rcall("PEXPIRE", rateKey, queuePerMs)
  end

  jobEvent(eventsKey, "active", leased)
  local first = rcall("ZRANGE", delayedKey, 0, 0, "WITHSCORES")
  local nextDue = first[2] and tonumber(first[2])
  if throttledUntil and left then
    out[5] = 1
    if not nextDue or throttledUntil < nextDue then nextDue = throttledUntil end
  end
  if nextDue then out[2] = nextDue end
  return out
end
