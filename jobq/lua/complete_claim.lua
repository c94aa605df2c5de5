--[[
  complete_claim: a worker's completions and its next claim in one call, so a job costs one
  round trip: the slots the completed jobs free are filled in the same call. The
  completions go first and are written even while the queue is paused (then nothing is leased).

  KEYS[1] wait list             (the default priority; lib/waiting names the others)
  KEYS[2] active zset           (score = lease deadline, ms)
  KEYS[3] delayed zset          (score = due time, ms)
  KEYS[4] job hash key prefix
  KEYS[5] paused flag
  KEYS[6] job event stream
  KEYS[7] completed zset        (score = finishedAt, ms)
  KEYS[8] throughput key prefix

  ARGV[1] most jobs to lease
  ARGV[2] lease length (ms)
  ARGV[3] worker id
  ARGV[4] the queue's rate limit: most starts per period (0 = none)
  ARGV[5] the queue's rate period (ms)
  ARGV[6] completed jobs to keep (count)
  ARGV[7] completed jobs' maximum age (ms)
  ARGV[8..] jobId, token, result (JSON) triples

  Returns {n, the n completion answers (as complete's), then claim's answer (its list, or
  PAUSED)}.
]]
--- @include "lib/complete_jobs"
--- @include "lib/claim_jobs"
local done = completeJobs(
  {active = KEYS[2], completed = KEYS[7], jobPrefix = KEYS[4], tpPrefix = KEYS[8],
   events = KEYS[6]},
  tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV, 8)
local claimed = claimJobs(
  {wait = KEYS[1], active = KEYS[2], delayed = KEYS[3], jobPrefix = KEYS[4], paused = KEYS[5],
   events = KEYS[6]},
  tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
local out = {#done}
for _, v in ipairs(done) do out[#out + 1] = v end
if type(claimed) == "number" then
  out[#out + 1] = claimed
else
  for _, v in ipairs(claimed) do out[#out + 1] = v end
end
return out
