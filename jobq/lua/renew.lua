--[[
  renew: extend the leases a worker still holds (R3). Batched: one call per queue per tick.

  KEYS[1] active zset           (score = lease deadline, ms)
  KEYS[2] job hash key prefix

  ARGV[1] lease length (ms): the new deadline is now + this
  ARGV[2..] jobId, token pairs

  Returns one integer per pair: 1 renewed, 2 renewed and the job was asked to cancel (the
  worker then cancels its handler), -1 lease lost (token no longer current).
]]
--- @include "lib/clock"
--- @include "lib/codes"
local activeKey, jobPrefix = KEYS[1], KEYS[2]
local rcall = redis.call
local now = redisNowMs()

local deadline = now + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local jobId, token = ARGV[i], ARGV[i + 1]
  local f = rcall("HMGET", jobPrefix .. jobId, "token", "cancelRequested")
  if f[1] == token then
    rcall("ZADD", activeKey, "XX", deadline, jobId)
    out[#out + 1] = f[2] and CANCEL_REQUESTED or DONE
  else
    out[#out + 1] = LEASE_LOST
  end
end
return out
