--[[
  lib/slots: give back a job's concurrency slot (R17). Every end of a running attempt comes
  here: complete, fail (and retry), end_cancelled, hand-back, and reclaim (a crashed worker's
  slot returns with its lease). The slot is the job's membership of the set named by its
  "concKey" field, so giving it back twice is harmless. A freed slot un-parks the next job
  parked on that key (FIFO, one per slot: round robin between keys falls out of each key
  waking only its own) and puts it first in line at its priority.
  A woken job that will not take the slot (cancelled while waiting, or held by its own rate
  limit) passes the wake on (passWake), or the jobs parked behind it would wait for ever with
  the slot free.
  Every key is checked for its type before it is written (R21): a job stored before flow names
  were escaped may carry a concurrency key that names another key's parked list, and a script
  that failed on it half way would leave its job in no list at all.
]]
--- @include "lib/waiting"
local UNPARK_TRIES = 10  -- stale entries (a parked job cancelled meanwhile) skipped per release
local function keyIs(key, want)
  local t = redis.call("TYPE", key)["ok"]
  return t == want or t == "none"
end
local function unparkNext(base, concKey)
  local parkedKey = concKey .. ":parked"
  if not keyIs(parkedKey, "list") then return end
  for _ = 1, UNPARK_TRIES do
    local nextId = redis.call("RPOP", parkedKey)
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
local function releaseSlot(base, concKey, jobId)
  if not concKey or concKey == "" or not keyIs(concKey, "set") then return end
  if redis.call("SREM", concKey, jobId) == 0 then return end
  unparkNext(base, concKey)
end
local function passWake(base, concKey, concMax)
  if not concKey or concKey == "" or not keyIs(concKey, "set") then return end
  if redis.call("SCARD", concKey) < (tonumber(concMax) or 0) then unparkNext(base, concKey) end
end
