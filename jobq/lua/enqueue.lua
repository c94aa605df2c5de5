--[[
  enqueue: create a job once per idempotency key (R2), atomically.

  KEYS[1] idempotency record   (string; value = content fingerprint, EX = key retention)
  KEYS[2] job hash
  KEYS[3] wait list             (producers LPUSH, workers RPOP; the base of lib/waiting's keys)
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
  ARGV[12..17] priority and flow limits (see lib/new_job)
  ARGV[18] trace carrier (JSON; "" = none; not part of the fingerprint, R25)
  ARGV[19] this call's nonce (lib/new_job: a second execution answers CREATED again, R22)

  Returns 0 created, 1 duplicate (same content), -2 conflict (same key, other content).
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/idempotency"
--- @include "lib/new_job"
local job = {unpack(ARGV, 5, 4 + NEW_JOB_FIELDS)}
return createJob(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]), job, redisNowMs(), ARGV[5 + NEW_JOB_FIELDS])
