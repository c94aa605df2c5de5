--[[
  discard: delete one DLQ entry deliberately, with its replay log. Jobs replayed from it keep
  their lineage fields; only the entry goes. A tombstone (the request's nonce) stays a few
  minutes, so the same call run twice (a re-send, R22) answers "deleted" again, not "no such
  entry".

  KEYS[1] dlq zset
  KEYS[2] dlq entry hash
  KEYS[3] the entry's replay log
  KEYS[4] the entry's tombstone (string, the nonce of the discard that deleted it)

  ARGV[1] dlqId
  ARGV[2] this request's nonce
  ARGV[3] tombstone lifetime (seconds)

  Returns 1 deleted, -3 no such entry.
]]
--- @include "lib/codes"
local dlqKey, entryKey, replaysKey, tombKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dlqId, nonce, tombS = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rcall = redis.call

if rcall("EXISTS", entryKey) == 0 then
  if rcall("GET", tombKey) == nonce then return DONE end
  return NOT_FOUND
end
rcall("DEL", entryKey, replaysKey)
rcall("ZREM", dlqKey, dlqId)
rcall("SET", tombKey, nonce, "EX", tombS)
return DONE
