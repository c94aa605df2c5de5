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
  KEYS[9] the caller's call record (lib/calls: its last claim, R22)

  ARGV[1] most jobs to lease
  ARGV[2] lease length (ms)
  ARGV[3] worker id
  ARGV[4] the queue's rate limit: most starts per period (0 = none)
  ARGV[5] the queue's rate period (ms)
  ARGV[6] completed jobs to keep (count)
  ARGV[7] completed jobs' maximum age (ms)
  ARGV[8] the caller's sequence number of this call (lib/calls)
  ARGV[9] the last sequence number whose answer the caller received (0 = none)
  ARGV[10..] jobId, token, result (JSON) triples

  Returns {n, the n completion answers (as complete's), then claim's answer (its list, or
  PAUSED)}. Run twice (R22): the second execution answers as the first did (completions
  DONE, the jobs the first leased), changing nothing; -6 (CALL_STALE) for an overtaken copy.
]]
--- @include "lib/complete_jobs"
--- @include "lib/claim_jobs"
--- @include "lib/claim_call"
local recKey, seq, acked = KEYS[9], tonumber(ARGV[8]), tonumber(ARGV[9])
local rec = readCall(recKey)
if rec and rec.seq == seq then
  local again = claimAgain(rec, KEYS[4])
  local out = {#rec.done}
  for _, v in ipairs(rec.done) do out[#out + 1] = v end
  if type(again) == "number" then out[#out + 1] = again; return out end
  for _, v in ipairs(again) do out[#out + 1] = v end
  return out
end
if rec and rec.seq > seq then return CALL_STALE end
if rec then giveBackUnheard(rec, acked, queueBase(KEYS[4], ":job:"), KEYS[2], redisNowMs()) end
local done = completeJobs(
  {active = KEYS[2], completed = KEYS[7], jobPrefix = KEYS[4], tpPrefix = KEYS[8],
   events = KEYS[6]},
  tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV, 10)
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
local record = claimRecord(claimed)
record.done = done
if #record.leased > 0 or #done > 0 then
  writeCall(recKey, seq, record)
elseif rec then
  dropCall(recKey)
end
return out
