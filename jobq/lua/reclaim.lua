--[[
  reclaim: take back jobs whose lease expired (R4: worker killed, node lost). Each is re-leased
  to the sweeping worker under a fresh token, which then ends the attempt through `fail` with
  outcome "lost". If the sweeper dies in between, the new lease expires too and the next sweep
  takes the job again: nothing stays in `active` forever. Safe to run from every worker at once.

  KEYS[1] active zset           (score = lease deadline, ms)
  KEYS[2] job hash key prefix
  KEYS[3] the sweeper's call record (lib/calls: its last reclaim, R22)

  ARGV[1] lease length (ms)
  ARGV[2] sweeping worker id
  ARGV[3] most jobs to take
  ARGV[4] the sweeper's sequence number of this call (lib/calls)
  ARGV[5] the last sequence number whose answer the sweeper received (0 = none)

  Returns per job taken: jobId, new token, previous worker, attempt, maxAttempts, backoff, type
  Run twice (R22): the second execution answers the first's answer, taking nothing more; the
  jobs of an answer the sweeper never received are answered again by its next call (their
  lease renewed); -6 (CALL_STALE) for a copy overtaken by a later call.
]]
--- @include "lib/clock"
--- @include "lib/slots"
--- @include "lib/calls"
local activeKey, jobPrefix, recKey = KEYS[1], KEYS[2], KEYS[3]
local leaseMs, worker, most = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local seq, acked = tonumber(ARGV[4]), tonumber(ARGV[5])
local rcall = redis.call
local RECLAIM_FIELDS = 7

local rec = readCall(recKey)
if rec and rec.seq == seq then return rec.answer end
if rec and rec.seq > seq then return CALL_STALE end
local now = redisNowMs()
local out = {}
if rec and rec.seq ~= acked then  -- taken by a call whose answer never arrived: answer them now
  for i = 1, #rec.answer, RECLAIM_FIELDS do
    local jobId, token = rec.answer[i], rec.answer[i + 1]
    if rcall("HGET", jobPrefix .. jobId, "token") == token then
      rcall("ZADD", activeKey, "XX", now + leaseMs, jobId)
      for j = i, i + RECLAIM_FIELDS - 1 do out[#out + 1] = rec.answer[j] end
    end
  end
end
for _, jobId in ipairs(rcall("ZRANGEBYSCORE", activeKey, "-inf", now, "LIMIT", 0, most)) do
  local jobKey = jobPrefix .. jobId
  local f = rcall("HMGET", jobKey, "token", "attempts", "maxAttempts", "backoff", "type", "concKey")
  if not f[2] then
    rcall("ZREM", activeKey, jobId)  -- the record is gone; nothing to recover
  else
    local previous = string.match(f[1] or "", "^(.*):[^:]*$") or ""
    local token = worker .. ":reclaim:" .. f[2] .. ":" .. now
    rcall("HSET", jobKey, "token", token)
    rcall("ZADD", activeKey, now + leaseMs, jobId)
    releaseSlot(queueBase(jobPrefix, ":job:"), f[6], jobId)  -- the dead worker's slot
    if f[6] then  -- its run ends here, with the slot it held (fail keeps this end)
      local raw = rcall("HGET", jobKey, "h:" .. f[2])
      local entry = raw and cjson.decode(raw) or {}
      entry["end"] = now
      rcall("HSET", jobKey, "h:" .. f[2], cjson.encode(entry))
    end
    for _, v in ipairs({jobId, token, previous, f[2], f[3], f[4], f[5]}) do out[#out + 1] = v end
  end
end
if #out > 0 then writeCall(recKey, seq, {answer = out}) elseif rec then dropCall(recKey) end
return out
