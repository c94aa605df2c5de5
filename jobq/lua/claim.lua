--[[
  claim: promote due delayed jobs, then lease up to N waiting jobs to one worker (R3), highest
  priority first and FIFO within one, under the queue's rate limit and each job's own limits
  (R17): a job held back by a limit spends no attempt, and the jobs behind it still come.
  The work is lib/claim_jobs, which complete_claim shares.

  KEYS[1] wait list             (the default priority; lib/waiting names the others)
  KEYS[2] active zset           (score = lease deadline, ms)
  KEYS[3] delayed zset          (score = due time, ms; rate-limited jobs wait here too)
  KEYS[4] job hash key prefix   (job key = prefix .. jobId; same hash tag as the lists)
  KEYS[5] paused flag           (present = the queue is paused)
  KEYS[6] job event stream      (one "active" entry per call, lib/events)
  KEYS[7] the caller's call record (lib/calls: its last claim, R22)

  ARGV[1] most jobs to lease
  ARGV[2] lease length (ms)
  ARGV[3] worker id
  ARGV[4] the queue's rate limit: most starts per period (0 = none)
  ARGV[5] the queue's rate period (ms)
  ARGV[6] the caller's sequence number of this call (lib/calls)
  ARGV[7] the last sequence number whose answer the caller received (0 = none)

  Returns {now (ms, Redis's clock), nextDue (ms, -1 = none: the next delayed job, or when the
           queue's rate window opens), held by a rate limit, held by a
           concurrency limit, throttled (1 = jobs wait but the queue's rate allows none now),
           then per leased job:
           jobId, token, type, payload, attempts, maxAttempts, backoff, readyAt, timeoutS}
  The lease token is "<worker>:<attempt>", unique per attempt; every later write checks it.
  Returns -4 (PAUSED) and leases nothing while the queue is paused.
  Run twice (R22): the second execution answers the first's answer (the jobs it leased still
  held), leasing nothing more; -6 (CALL_STALE) for a copy overtaken by a later call.
]]
--- @include "lib/claim_jobs"
--- @include "lib/claim_call"
local recKey, seq, acked = KEYS[7], tonumber(ARGV[6]), tonumber(ARGV[7])
local rec = readCall(recKey)
if rec and rec.seq == seq then return claimAgain(rec, KEYS[4]) end
if rec and rec.seq > seq then return CALL_STALE end
if rec then giveBackUnheard(rec, acked, queueBase(KEYS[4], ":job:"), KEYS[2], redisNowMs()) end
local out = claimJobs(
  {wait = KEYS[1], active = KEYS[2], delayed = KEYS[3], jobPrefix = KEYS[4], paused = KEYS[5],
   events = KEYS[6]},
  tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
local record = claimRecord(out)
if #record.leased > 0 then writeCall(recKey, seq, record) elseif rec then dropCall(recKey) end
return out
