--[[
  lib/new_job: store a new job and its idempotency record, and put a ready one in line. Shared
  by enqueue and replay, so both write the same record. `job` holds the fields of
  jobq.scripts.NewJob in its ARGV order:
  type, queue, payload (JSON), idempotency key as sent, maxAttempts, backoff (JSON),
  timeout (seconds; "" = none), priority (0-9),
  rate key ("" = none: the full key of its start log), rate limit (starts), rate period (ms),
  concurrency key ("" = none: the full key of its running set), concurrency limit,
  trace carrier ("" = none: the creation context, JSON; stored as "tc", R25).
  The flow fields are written only when set: a job without limits costs no extra call. "flow"
  ("1" = it has limits) sits near the front of the hash, so claim learns a job has none from
  one early field instead of scanning the whole small hash for five absent ones.
  "enq" keeps the nonce of the call that created the job: the same call run twice (a re-send,
  R22) answers CREATED again, where another call with the same key answers DUPLICATE.
]]
--- @include "lib/codes"
--- @include "lib/idempotency"
--- @include "lib/waiting"
local NEW_JOB_FIELDS = 14
local function storeNewJob(idemKey, jobKey, jobId, fingerprint, retentionS, job, state, now, readyAt,
                           nonce)
  redis.call("SET", idemKey, fingerprint, "EX", retentionS)
  local limited = (job[9] ~= "" or job[12] ~= "") and "1" or ""
  redis.call("HSET", jobKey, "id", jobId, "flow", limited, "fp", fingerprint, "type", job[1],
    "queue", job[2], "payload", job[3], "key", job[4], "attempts", 0, "maxAttempts", job[5], "backoff", job[6],
    "timeoutS", job[7], "state", state, "createdAt", now, "readyAt", readyAt, "priority", job[8],
    "enq", nonce)
  if job[9] ~= "" then
    redis.call("HSET", jobKey, "rateKey", job[9], "rateMax", job[10], "ratePerMs", job[11])
  end
  if job[12] ~= "" then redis.call("HSET", jobKey, "concKey", job[12], "concMax", job[13]) end
  if job[14] ~= "" then redis.call("HSET", jobKey, "tc", job[14]) end
end
-- A new ready job goes last in line at its priority. `waitKey` is the queue's "<base>:wait".
local function pushNewJob(waitKey, jobId, job)
  pushWaiting(queueBase(waitKey, ":wait"), jobId, job[8], false)
end
-- enqueue's whole work for one job (enqueue_batch runs it per job): the idempotency verdict
-- or CREATED, stored delayed or put in line.
local function createJob(idemKey, jobKey, waitKey, delayedKey, jobId, fingerprint, retentionS,
                         delayMs, job, now, nonce)
  local verdict = idempotencyVerdict(idemKey, jobKey, fingerprint, nonce)
  if verdict then return verdict end
  if delayMs > 0 then
    storeNewJob(idemKey, jobKey, jobId, fingerprint, retentionS, job, "delayed", now, now + delayMs,
      nonce)
    redis.call("ZADD", delayedKey, now + delayMs, jobId)
  else
    storeNewJob(idemKey, jobKey, jobId, fingerprint, retentionS, job, "waiting", now, now, nonce)
    pushNewJob(waitKey, jobId, job)
  end
  return CREATED
end
