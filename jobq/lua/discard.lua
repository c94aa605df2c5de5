--[[
  discard: delete one DLQ entry deliberately, with its replay log. Jobs replayed from it keep
  their lineage fields; only the entry goes.

  KEYS[1] dlq zset
  KEYS[2] dlq entry hash
  KEYS[3] the entry's replay log

  ARGV[1] dlqId

  Returns 1 deleted, -3 no such entry.
]]
--- @include "lib/codes"
local dlqKey, entryKey, replaysKey = KEYS[1], KEYS[2], KEYS[3]
local dlqId = ARGV[1]
local rcall = redis.call

if rcall("EXISTS", entryKey) == 0 then return NOT_FOUND end
rcall("DEL", entryKey, replaysKey)
rcall("ZREM", dlqKey, dlqId)
return DONE
