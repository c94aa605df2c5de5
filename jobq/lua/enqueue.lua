--[[
  enqueue: create a job once per idempotency key (R2), atomically.

  KEYS[1] idempotency record   (string; value = content fingerprint, EX = key retention)
  KEYS[2] job hash
  KEYS[3] wait list             (producers LPUSH, workers RPOP)
  KEYS[4] delayed zset          (score = due time, ms)

  ARGV[1] jobId
  ARGV[2] fingerprint of type + payload
  ARGV[3] idempotency retention (seconds)
  ARGV[4] delay (ms; 0 = ready now)
  ARGV[5] type
  ARGV[6] queue
  ARGV[7] payload (JSON object)
  ARGV[8] idempotency key as sent
  ARGV[9] maxAttempts
  ARGV[10] backoff (JSON)
  ARGV[11] timeout (seconds; "" = none)

  Returns 0 created, 1 duplicate (same content), -2 conflict (same key, other content).
]]
local idemKey, jobKey, waitKey, delayedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobId, fingerprint = ARGV[1], ARGV[2]
local retentionS, delayMs = tonumber(ARGV[3]), tonumber(ARGV[4])
local rcall = redis.call
local clock = rcall("TIME")  -- one clock for every worker and producer: Redis's
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

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
rcall("HSET", jobKey, "id", jobId, "fp", fingerprint, "type", ARGV[5], "queue", ARGV[6],
  "payload", ARGV[7], "key", ARGV[8], "attempts", 0, "maxAttempts", ARGV[9],
  "backoff", ARGV[10], "timeoutS", ARGV[11])
if delayMs > 0 then
  rcall("HSET", jobKey, "state", "delayed", "createdAt", now, "readyAt", now + delayMs)
  rcall("ZADD", delayedKey, now + delayMs, jobId)
else
  rcall("HSET", jobKey, "state", "waiting", "createdAt", now, "readyAt", now)
  rcall("LPUSH", waitKey, jobId)
end
return 0
