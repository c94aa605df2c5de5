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
  ARGV[11] replayedFromJobId
  ARGV[12] dlqId

  Returns 0 replayed, 1 duplicate of an earlier replay, -2 key reused with other content,
  -3 no such DLQ entry.
]]
local entryKey, replaysKey, idemKey, jobKey, waitKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobId, fingerprint, retentionS = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rcall = redis.call
local clock = rcall("TIME")  -- one clock for every worker and producer: Redis's
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

if rcall("EXISTS", entryKey) == 0 then return -3 end
local known = rcall("GET", idemKey)
if known then
  if known == fingerprint then return 1 end
  return -2
end

rcall("SET", idemKey, fingerprint, "EX", retentionS)
rcall("HSET", jobKey, "id", jobId, "fp", fingerprint, "type", ARGV[4], "queue", ARGV[5],
  "payload", ARGV[6], "key", ARGV[7], "attempts", 0, "maxAttempts", ARGV[8],
  "backoff", ARGV[9], "timeoutS", ARGV[10], "replayedFromJobId", ARGV[11], "dlqId", ARGV[12],
  "state", "waiting", "createdAt", now, "readyAt", now, "replayedAt", now)
rcall("LPUSH", waitKey, jobId)
rcall("LPUSH", replaysKey, cjson.encode({jobId = jobId, replayedAt = now}))
return 0
