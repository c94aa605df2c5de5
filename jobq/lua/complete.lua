--[[
  complete: mark leased jobs completed (fenced by token, R3) and trim old ones (R12). Batched.

  KEYS[1] active zset
  KEYS[2] completed zset        (score = finishedAt, ms)
  KEYS[3] job hash key prefix

  ARGV[1] completed jobs to keep (count)
  ARGV[2] completed jobs' maximum age (ms)
  ARGV[3..] jobId, token, result (JSON) triples

  Returns one integer per triple: 1 completed, -1 lease lost (the write was refused).
]]
local activeKey, completedKey, jobPrefix = KEYS[1], KEYS[2], KEYS[3]
local keep, maxAgeMs = tonumber(ARGV[1]), tonumber(ARGV[2])
local rcall = redis.call
local clock = rcall("TIME")  -- one clock for every worker and producer: Redis's
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local out = {}
for i = 3, #ARGV, 3 do
  local jobId, token, result = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local jobKey = jobPrefix .. jobId
  local f = rcall("HMGET", jobKey, "token", "attempts")
  if f[1] == token then
    local entryKey = "h:" .. f[2]
    local entry = cjson.decode(rcall("HGET", jobKey, entryKey))
    entry["end"] = now
    entry["outcome"] = "completed"
    rcall("HSET", jobKey, "state", "completed", "finishedAt", now, "result", result,
      "token", "", entryKey, cjson.encode(entry))
    rcall("ZREM", activeKey, jobId)
    rcall("ZADD", completedKey, now, jobId)
    out[#out + 1] = 1
  else
    out[#out + 1] = -1
  end
end

local excess = rcall("ZCARD", completedKey) - keep
local old = rcall("ZRANGEBYSCORE", completedKey, "-inf", now - maxAgeMs, "LIMIT", 0, 1000)
if excess > 0 then
  local oldest = rcall("ZRANGE", completedKey, 0, excess - 1)
  for _, jobId in ipairs(oldest) do old[#old + 1] = jobId end
end
for _, jobId in ipairs(old) do
  rcall("DEL", jobPrefix .. jobId)
  rcall("ZREM", completedKey, jobId)
end
return out
