--[[
  enqueue_batch: enqueue's work for many jobs of one queue in one call: each job is created
  once per idempotency key (R2), exactly as enqueue would, and answered on its own.

  KEYS[1] wait list             (the default priority's; lib/waiting names the others)
  KEYS[2] delayed zset          (score = due time, ms)
  KEYS[3..] per job, in order: idempotency record, job hash

  ARGV[1] idempotency retention (seconds)
  ARGV[2] this call's nonce (job n's is "<nonce>:<n>", lib/new_job; R22)
  ARGV[3..] per job, BATCH_JOB_ARGS values: jobId, fingerprint, delay (ms; 0 = ready now),
            then the NEW_JOB_FIELDS fields of lib/new_job (type ... trace carrier)

  Each job goes through lib/new_job's createJob, enqueue's whole work, so the two cannot drift.

  Returns one integer per job: 0 created, 1 duplicate (same content), -2 conflict. Run twice
  (R22), each job answers as it did the first time.
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/idempotency"
--- @include "lib/new_job"
local waitKey, delayedKey = KEYS[1], KEYS[2]
local retentionS, nonce = tonumber(ARGV[1]), ARGV[2]
local now = redisNowMs()
local BATCH_JOB_ARGS = 3 + NEW_JOB_FIELDS

local out = {}
for n = 0, (#ARGV - 2) / BATCH_JOB_ARGS - 1 do
  local a, k = 3 + n * BATCH_JOB_ARGS, 3 + n * 2
  out[#out + 1] = createJob(KEYS[k], KEYS[k + 1], waitKey, delayedKey, ARGV[a], ARGV[a + 1],
    retentionS, tonumber(ARGV[a + 2]), {unpack(ARGV, a + 3, a + 2 + NEW_JOB_FIELDS)}, now,
    nonce .. ":" .. n)
end
return out
