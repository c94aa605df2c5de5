--[[
  wf_release: create the jobs of released workflow nodes in their queue (one queue per call),
  or make sure cancelled ones never start. A node's job id and idempotency key come from the
  workflow id, the node key and the epoch (jobq/workflows/keys.py), so creating it twice makes
  one job (R2): the release is idempotent, and a ready entry handed to two relays runs once.
  The job carries "wf" = "<workflow id>|<index>|<epoch>", which routes its final outcome to the
  outbox (lib/workflow_outbox).

  KEYS[1] wait list
  KEYS[2] delayed zset          (score = due time, ms)
  KEYS[3] cancelled zset        (score = finishedAt, ms)
  KEYS[4] job hash key prefix   (never exists: the slot-migration fence)
  KEYS[5..] per job: idempotency record, job hash

  ARGV[1] idempotency retention (seconds)
  ARGV[2] this call's nonce (lib/new_job: a second execution answers as the first, R22)
  ARGV[3..] per job: mode ("run" | "cancel"), jobId, fingerprint, delay (ms), wf field, then
            the NEW_JOB_FIELDS job fields (jobq.scripts.NewJob)

  Returns one code per job. run: 0 created, 1 created already (by an earlier release), -2 the
  id holds a job that is not this node's (another producer used the key: the node fails).
  cancel: 3 no job existed, a cancelled one now stands in its place so no late release can
  start it; 4 the job exists (the caller cancels it with `cancel`).
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/idempotency"
--- @include "lib/new_job"
--- @include "lib/workflow_outbox"
local retentionS, nonce = tonumber(ARGV[1]), ARGV[2]
local now = redisNowMs()
local out = {}
local per = 5 + NEW_JOB_FIELDS
local n = 0
for at = 3, #ARGV, per do
  n = n + 1
  local idemKey, jobKey = KEYS[3 + 2 * n], KEYS[4 + 2 * n]
  local mode, jobId, fingerprint, delayMs, wf = ARGV[at], ARGV[at + 1], ARGV[at + 2],
    tonumber(ARGV[at + 3]), ARGV[at + 4]
  local job = {unpack(ARGV, at + 5, at + 4 + NEW_JOB_FIELDS)}
  local verdict = idempotencyVerdict(idemKey, jobKey, fingerprint, nonce)
  if mode == "run" then
    if verdict == nil then
      verdict = createJob(idemKey, jobKey, KEYS[1], KEYS[2], jobId, fingerprint, retentionS,
        delayMs, job, now, nonce)
      redis.call("HSET", jobKey, "wf", wf)
    elseif verdict == DUPLICATE then
      local owner = redis.call("HGET", jobKey, "wf")
      if (owner and owner ~= wf) or (not owner and redis.call("EXISTS", jobKey) == 1) then
        verdict = CONFLICT
      end
    end
    out[#out + 1] = verdict
  elseif verdict ~= nil then
    out[#out + 1] = 4
  else
    storeNewJob(idemKey, jobKey, jobId, fingerprint, retentionS, job, "cancelled", now, now, nonce)
    redis.call("HSET", jobKey, "wf", wf, "finishedAt", now, "cancelRequested", now)
    redis.call("ZADD", KEYS[3], now, jobId)
    workflowOutcome(KEYS[4], jobId, "C", "cancelled on request", now, wf)
    out[#out + 1] = 3
  end
end
return out
