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
  ARGV[4] now (ms)
  ARGV[5] type
  ARGV[6] queue
  ARGV[7] payload (JSON object)
  ARGV[8] idempotency key of the replay
  ARGV[9] maxAttempts
  ARGV[10] backoff (JSON)
  ARGV[11] timeout (seconds; "" = none)
  ARGV[12] replayedFromJobId
  ARGV[13] dlqId

  Returns 0 replayed, 1 duplicate of an earlier replay, -2 key reused with other content,
  -3 no such DLQ entry.
]]
local entryKey, replaysKey, idemKey, jobKey, waitKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobId, fingerprint, retentionS, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local rcall = redis.call

if rcall("EXISTS", entryKey) == 0 then return -3 end
local known = rcall("GET", idemKey)
if known then
  if known == fingerprint then return 1 end
  return -2
end

rcall("SET", idemKey, fingerprint, "EX", retentionS)
rcall("HSET", jobKey, "id", jobId, "fp", fingerprint, "type", ARGV[5], "queue", ARGV[6],
  "payload", ARGV[7], "key", ARGV[8], "attempts", 0, "maxAttempts", ARGV[9],
  "backoff", ARGV[10], "timeoutS", ARGV[11], "replayedFromJobId", ARGV[12], "dlqId", ARGV[13],
  "state", "waiting", "createdAt", now, "readyAt", now, "replayedAt", now)
rcall("LPUSH", waitKey, jobId)
rcall("LPUSH", replaysKey, cjson.encode({jobId = jobId, replayedAt = now}))
return 0
