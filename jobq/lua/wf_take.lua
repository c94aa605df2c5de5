--[[
  wf_take: a relay's turn at its queue's workflow outbox (lib/workflow_outbox). First the
  entries it has applied are acknowledged (deleted), then it takes the entries that are due,
  each leased to it for ARGV[2] ms: another relay takes an entry only after that, so a relay
  killed while applying delays its entries by the lease at most (crash recovery), and two
  relays rarely apply the same entry (which would still change nothing: wf_apply's guard).
  Safe to run twice: acknowledging twice deletes nothing more, a second take finds the entries
  leased.

  KEYS[1] outbox hash           (jobId -> entry JSON)
  KEYS[2] outbox due zset       (jobId -> when a relay may take it, ms)

  ARGV[1] most entries to take (0: only acknowledge)
  ARGV[2] lease on each taken entry (ms)
  ARGV[3..] jobIds of entries applied (to delete)

  Returns jobId, entry JSON pairs.
]]
--- @include "lib/clock"
for i = 3, #ARGV do
  redis.call("HDEL", KEYS[1], ARGV[i])
  redis.call("ZREM", KEYS[2], ARGV[i])
end
local out = {}
if tonumber(ARGV[1]) <= 0 then return out end  -- an acknowledgement only
local now = redisNowMs()
for _, id in ipairs(redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now, "LIMIT", 0,
    tonumber(ARGV[1]))) do
  local entry = redis.call("HGET", KEYS[1], id)
  if entry then
    redis.call("ZADD", KEYS[2], now + tonumber(ARGV[2]), id)
    out[#out + 1] = id
    out[#out + 1] = entry
  else
    redis.call("ZREM", KEYS[2], id)
  end
end
return out
