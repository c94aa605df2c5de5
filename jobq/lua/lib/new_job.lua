--[[
  lib/new_job: store a new job and its idempotency record. Shared by enqueue and replay, so both
  write the same record. `job` holds the fields of jobq.scripts.NewJob in its ARGV order:
  type, queue, payload (JSON), idempotency key as sent, maxAttempts, backoff (JSON),
  timeout (seconds; "" = none).
]]
local NEW_JOB_FIELDS = 7
local function storeNewJob(idemKey, jobKey, jobId, fingerprint, retentionS, job, state, now, readyAt)
  redis.call("SET", idemKey, fingerprint, "EX", retentionS)
  redis.call("HSET", jobKey, "id", jobId, "fp", fingerprint, "type", job[1], "queue", job[2],
    "payload", job[3], "key", job[4], "attempts", 0, "maxAttempts", job[5], "backoff", job[6],
    "timeoutS", job[7], "state", state, "createdAt", now, "readyAt", readyAt)
end
