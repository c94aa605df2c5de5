--[[
  fail: end a leased attempt that failed or was lost (fenced by token, R3). With attempts left
  and a retryable error the job waits in `delayed` for its backoff (R5); otherwise it becomes
  `failed` and exactly one DLQ entry is written in the same step (R6).

  KEYS[1] active zset
  KEYS[2] delayed zset          (score = due time, ms)
  KEYS[3] failed zset           (score = finishedAt, ms)
  KEYS[4] dlq zset              (score = failedAt, ms; member = dlqId)
  KEYS[5] dlq sequence counter
  KEYS[6] job hash key prefix   (job key = prefix .. jobId)
  KEYS[7] dlq entry key prefix  (entry key = prefix .. dlqId)
  KEYS[8] throughput key prefix (per-minute hash = prefix .. minute; field "failed")
  KEYS[9] job event stream      (a "delayed" or "failed" entry, lib/events)

  ARGV[1] jobId
  ARGV[2] lease token
  ARGV[3] failure reason
  ARGV[4] retry delay (ms)
  ARGV[5] "1" = permanent (skip remaining attempts)
  ARGV[6] outcome recorded in history: "failed" | "lost" | "timeout"
  ARGV[7] queue name (dlqId = queue .. "-" .. sequence)
  ARGV[8] failed jobs to keep (count)
  ARGV[9] failed jobs' maximum age (ms)
  ARGV[10] DLQ entries' maximum age (ms; 0 = keep them forever)

  Returns {1, dueAt} retry scheduled, {2, dlqId} dead-lettered, -1 lease lost.
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/attempt"
--- @include "lib/trim"
--- @include "lib/throughput"
--- @include "lib/events"
--- @include "lib/slots"
local activeKey, delayedKey, failedKey, dlqKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dlqSeqKey, jobPrefix, dlqPrefix, tpPrefix = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local eventsKey = KEYS[9]
local jobId, token, reason = ARGV[1], ARGV[2], ARGV[3]
local delayMs, permanent, outcome, queue = tonumber(ARGV[4]), ARGV[5] == "1", ARGV[6], ARGV[7]
local keep, maxAgeMs, dlqMaxAgeMs = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local rcall = redis.call
local now = redisNowMs()
local jobKey = jobPrefix .. jobId

local f = rcall("HMGET", jobKey, "token", "attempts", "maxAttempts", "type", "payload", "concKey")
if f[1] ~= token then return LEASE_LOST end
local attempts, maxAttempts = tonumber(f[2]), tonumber(f[3])

closeAttempt(activeKey, jobKey, jobId, f[2], now, outcome, reason)
releaseSlot(queueBase(jobPrefix, ":job:"), f[6], jobId)
rcall("HSET", jobKey, "failedReason", reason)
if outcome == "lost" then rcall("HINCRBY", jobKey, "lost", 1) end

if not permanent and attempts < maxAttempts then
  rcall("HSET", jobKey, "state", "delayed", "readyAt", now + delayMs)
  rcall("ZADD", delayedKey, now + delayMs, jobId)
  jobEvent(eventsKey, "delayed", {jobId})
  return {1, now + delayMs}
end

local dlqId = queue .. "-" .. rcall("INCR", dlqSeqKey)
rcall("HSET", dlqPrefix .. dlqId, "dlqId", dlqId, "originalJobId", jobId, "type", f[4],
  "queue", queue, "payload", f[5], "failedReason", reason, "attempts", attempts, "failedAt", now)
rcall("ZADD", dlqKey, now, dlqId)
rcall("HSET", jobKey, "state", "failed", "finishedAt", now, "deadLetterId", dlqId)
rcall("ZADD", failedKey, now, jobId)
countThroughput(tpPrefix, now, "failed", 1)
jobEvent(eventsKey, "failed", {jobId})

-- Trim old failed job records; their DLQ entries outlive them.
trimFinished(failedKey, jobPrefix, keep, maxAgeMs, now)

-- DLQ entries (and their replay logs) past their retention, a bounded batch per failure.
if dlqMaxAgeMs > 0 then
  for _, id in ipairs(rcall("ZRANGEBYSCORE", dlqKey, "-inf", now - dlqMaxAgeMs, "LIMIT", 0, 100)) do
    rcall("DEL", dlqPrefix .. id, dlqPrefix .. id .. ":replays")
    rcall("ZREM", dlqKey, id)
  end
end
return {2, dlqId}
