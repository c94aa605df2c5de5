--[[
  progress: record what a running handler reported of its progress (fenced by token, R3: a
  worker whose lease was lost writes nothing), and tell the job's watchers (lib/events).

  KEYS[1] job hash
  KEYS[2] job event stream      (a "progress" entry, lib/events)

  ARGV[1] jobId
  ARGV[2] lease token
  ARGV[3] fraction done (0..1)
  ARGV[4] message ("" = none)

  Returns 1 recorded, -1 lease lost (the write was refused).
]]
--- @include "lib/clock"
--- @include "lib/codes"
--- @include "lib/events"
local jobKey, eventsKey = KEYS[1], KEYS[2]
local jobId, token, fraction, message = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rcall = redis.call

if rcall("HGET", jobKey, "token") ~= token then return LEASE_LOST end
rcall("HSET", jobKey, "progress", fraction, "progressMessage", message,
  "progressAt", redisNowMs())
jobEvent(eventsKey, "progress", {jobId})
return DONE
