--[[
  enqueue: create a job once per idempotency key (R2), atomically.

  KEYS[1] idempotency record   (string; value = content fingerprint, EX = key retention)
  KEYS[2] job hash
  KEYS[3] wait list             (producers LPUSH, workers RPOP)
  KEYS[4] delayed zset          (score = due time, ms)

  ARGV[1] jobId
  ARGV[2] fingerprint of type + payload
  ARGV[3] idempotency retention (seconds)
  ARGV[4] now (ms since epoch)
  ARGV[5] delay (ms; 0 = ready now)
  ARGV[6] type
  ARGV[7] queue
  ARGV[8] payload (JSON object)
  ARGV[9] idempotency key as sent
  ARGV[10] maxAttempts
  ARGV[11] backoff (JSON)
  ARGV[12] timeout (seconds; "" = none)

  Returns 0 created, 1 duplicate (same content), -2 conflict (same key, other content).
]]
local idemKey, jobKey, waitKey, delayedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobId, fingerprint = ARGV[1], ARGV[2]
local retentionS, now, delayMs = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local rcall = redis.call

local known = rcall("GET", idemKey)
if not known then
  -- The record may have expired while the job itself is still kept.
  known = rcall("HGET", jobKey, "fp")
end
if known then
  if known == fingerprint then return 1 end
  return -2
end

rcall("SET", idemKey, fingerprint, "EX", retentionS)
rcall("HSET", jobKey, "id", jobId, "fp", fingerprint, "type", ARGV[6], "queue", ARGV[7],
  "payload", ARGV[8], "key", ARGV[9], "attempts", 0, "maxAttempts", ARGV[10],
  "backoff", ARGV[11], "timeoutS", ARGV[12])
if delayMs > 0 then
  rcall("HSET", jobKey, "state", "delayed", "createdAt", now, "readyAt", now + delayMs)
  rcall("ZADD", delayedKey, now + delayMs, jobId)
else
  rcall("HSET", jobKey, "state", "waiting", "createdAt", now, "readyAt", now)
  rcall("LPUSH", waitKey, jobId)
end
return 0
