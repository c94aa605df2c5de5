--[[
  fail: end a leased attempt that failed or was lost (fenced by token, R3). With attempts left
  and a retryable error the job waits in `delayed` for its backoff (R5); otherwise it becomes
  `failed` and exactly one DLQ entry is written in the same step (R6). A job whose cancel was
  requested while it ran ends `cancelled` instead, whatever its attempt did (R23): no retry,
  no DLQ entry.
  Run twice (a re-send, R22), the second execution finds its own token in "endToken" and
  answers what the first did ("endAnswer"), changing nothing.

  KEYS[1] active zset
  KEYS[2] delayed zset          (score = due time, ms)
  KEYS[3] failed zset           (score = finishedAt, ms)
  KEYS[4] dlq zset              (score = failedAt, ms; member = dlqId)
  KEYS[5] dlq sequence counter
  KEYS[6] job hash key prefix   (job key = prefix .. jobId)
  KEYS[7] dlq entry key prefix  (entry key = prefix .. dlqId)
  KEYS[8] throughput key prefix (per-minute hash = prefix .. minute; field "failed")
  KEYS[9] job event stream      (a "delayed", "failed" or "cancelled" entry, lib/events)
  KEYS[10] cancelled zset       (score = finishedAt, ms)

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

  Returns {1, dueAt} retry scheduled, {2, dlqId} dead-lettered, {3, 0} cancelled (its cancel
  was requested), -1 lease lost.
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/attempt"
--- @include "lib/dead_letter"
--- @include "lib/slots"
--- @include "lib/workflow_outbox"
local activeKey, delayedKey, jobPrefix, eventsKey = KEYS[1], KEYS[2], KEYS[6], KEYS[9]
local cancelledKey = KEYS[10]
local jobId, token, reason = ARGV[1], ARGV[2], ARGV[3]
local delayMs, permanent, outcome, queue = tonumber(ARGV[4]), ARGV[5] == "1", ARGV[6], ARGV[7]
local rcall = redis.call
local now = redisNowMs()
local jobKey = jobPrefix .. jobId

local f = rcall("HMGET", jobKey, "token", "attempts", "maxAttempts", "type", "payload", "concKey",
  "cancelRequested", "endToken", "endAnswer")
if f[1] ~= token then
  if f[8] == token and f[9] then  -- this very call ran already: its answer again
    local kind, value = string.match(f[9], "^(%d):(.*)$")
    return {tonumber(kind), kind == "2" and value or tonumber(value)}
  end
  return LEASE_LOST
end
local attempts, maxAttempts = tonumber(f[2]), tonumber(f[3])

closeAttempt(activeKey, jobKey, jobId, f[2], now, outcome, reason, token)
releaseSlot(queueBase(jobPrefix, ":job:"), f[6], jobId)
rcall("HSET", jobKey, "failedReason", reason)
if outcome == "lost" then rcall("HINCRBY", jobKey, "lost", 1) end

if f[7] then
  rcall("HSET", jobKey, "state", "cancelled", "finishedAt", now, "endAnswer", "3:0")
  rcall("ZADD", cancelledKey, now, jobId)
  workflowOutcome(jobPrefix, jobId, "C", "cancelled on request", now)
  jobEvent(eventsKey, "cancelled", {jobId})
  return {3, 0}
end

if not permanent and attempts < maxAttempts then
  rcall("HSET", jobKey, "state", "delayed", "readyAt", now + delayMs,
    "endAnswer", "1:" .. (now + delayMs))
  rcall("ZADD", delayedKey, now + delayMs, jobId)
  jobEvent(eventsKey, "delayed", {jobId})
  return {1, now + delayMs}
end

local dlqId = deadLetter(
  {failed = KEYS[3], dlq = KEYS[4], dlqSeq = KEYS[5], dlqPrefix = KEYS[7], jobPrefix = jobPrefix,
   tpPrefix = KEYS[8], events = eventsKey},
  queue, jobId, f[4], f[5], reason, attempts, now, tonumber(ARGV[8]), tonumber(ARGV[9]),
  tonumber(ARGV[10]))
rcall("HSET", jobKey, "endAnswer", "2:" .. dlqId)
return {2, dlqId}
