--[[
  replay: create a new job from a DLQ entry (R7) and record the replay beside the entry, which
  itself never changes. Idempotent by the replay's own key, like enqueue (R2).

  KEYS[1] dlq entry hash
  KEYS[2] the entry's replay log (list of JSON {jobId, replayedAt}, newest first)
  KEYS[3] idempotency record of the new job
  KEYS[4] new job hash
  KEYS[5] wait list

  ARGV[1] new jobId
  ARGV[2] fingerprint of the replay request
  ARGV[3] idempotency retention (seconds)
  ARGV[4] type
  ARGV[5] queue
  ARGV[6] payload (JSON object)
  ARGV[7] idempotency key of the replay
  ARGV[8] maxAttempts
  ARGV[9] backoff (JSON)
  ARGV[10] timeout (seconds; "" = none)
  ARGV[11..16] priority and flow limits (see lib/new_job)
  ARGV[17] trace carrier (JSON; "" = none; R25)
  ARGV[18] replayedFromJobId
  ARGV[19] dlqId
  ARGV[20] this call's nonce (lib/new_job: a second execution answers 0 again, R22)

  Returns 0 replayed, 1 duplicate of an earlier replay, -2 key reused with other content,
  -3 no such DLQ entry.
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/idempotency"
--- @include "lib/new_job"
local entryKey, replaysKey, idemKey, jobKey, waitKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobId, fingerprint, retentionS = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rcall = redis.call
local now = redisNowMs()

local job = {unpack(ARGV, 4, 3 + NEW_JOB_FIELDS)}
local replayedFromJobId, dlqId = ARGV[4 + NEW_JOB_FIELDS], ARGV[5 + NEW_JOB_FIELDS]
local nonce = ARGV[6 + NEW_JOB_FIELDS]

if rcall("EXISTS", entryKey) == 0 then return NOT_FOUND end
local verdict = idempotencyVerdict(idemKey, jobKey, fingerprint, nonce)
if verdict then return verdict end

storeNewJob(idemKey, jobKey, jobId, fingerprint, retentionS, job, "waiting", now, now, nonce)
rcall("HSET", jobKey, "replayedFromJobId", replayedFromJobId, "dlqId", dlqId, "replayedAt", now)
pushNewJob(waitKey, jobId, job)
rcall("LPUSH", replaysKey, cjson.encode({jobId = jobId, replayedAt = now}))
return CREATED
