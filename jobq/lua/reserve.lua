--[[
  reserve: reserve a named side effect for a job before it runs (R8). Only the current lease
  holder may reserve; a retry or a recovered attempt finds the reservation and skips the effect.

  KEYS[1] job hash
  KEYS[2] side-effect reservation (string)

  ARGV[1] lease token
  ARGV[2] reservation retention (seconds)
  ARGV[3] attempt that reserves (stored as the value)

  Returns 1 reserved (run the effect), 0 already reserved (skip it), -1 lease lost.
]]
--- @include "lib/codes"
local jobKey, effectKey = KEYS[1], KEYS[2]
local token, retentionS, attempt = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local rcall = redis.call

if rcall("HGET", jobKey, "token") ~= token then return LEASE_LOST end
if rcall("SET", effectKey, attempt, "NX", "EX", retentionS) then return DONE end
return SKIPPED
