--[[
  complete: mark leased jobs completed (fenced by token, R3) and trim old ones (R12). Batched.
  The work is lib/complete_jobs, which complete_claim shares.

  KEYS[1] active zset
  KEYS[2] completed zset        (score = finishedAt, ms)
  KEYS[3] job hash key prefix
  KEYS[4] throughput key prefix (per-minute hash = prefix .. minute; field "completed")
  KEYS[5] job event stream      (one "completed" entry per call, lib/events)

  ARGV[1] completed jobs to keep (count)
  ARGV[2] completed jobs' maximum age (ms)
  ARGV[3..] jobId, token, result (JSON) triples

  Returns one integer per triple: 1 completed, -1 lease lost (the write was refused).
]]
--- @include "lib/complete_jobs"
return completeJobs(
  {active = KEYS[1], completed = KEYS[2], jobPrefix = KEYS[3], tpPrefix = KEYS[4],
   events = KEYS[5]},
  tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV, 3)
