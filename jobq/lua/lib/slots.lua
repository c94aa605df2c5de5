--[[
  lib/slots: give back a job's concurrency slot (R17). Every end of a running attempt comes
  here: complete, fail (and retry), end_cancelled, hand-back, and reclaim (a crashed worker's
  slot returns with its lease). The slot is the job's membership of the set named by its
  "concKey" field, so giving it back twice is harmless. A freed slot un-parks the next job
  parked on that key (FIFO, one per slot: round robin between keys falls out of each key
  waking only its own) and puts it first in line at its priority.
]]
--- @include "lib/waiting"
local UNPARK_TRIES = 10  -- stale entries (a parked job cancelled meanwhile) skipped per release
local function releaseSlot(base, concKey, jobId)
  if not concKey or concKey == "" then return end
  if redis.call("SREM", concKey, jobId) == 0 then return end
  for _ = 1, UNPARK_TRIES do
    local nextId = redis.call("RPOP", concKey .. ":parked")
    if not nextId then return end
    redis.call("DECR", base .. ":parked")
    local nextKey = base .. ":job:" .. nextId
    local f = redis.call("HMGET", nextKey, "state", "priority")
    redis.call("HDEL", nextKey, "heldBy")
    if f[1] == "waiting" then
      pushWaiting(base, nextId, f[2], true)
      return
    end
  end
end
