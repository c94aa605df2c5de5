--[[
  reserve: reserve a named side effect for a job before it runs (R8). Only the current lease
  holder may reserve; a later call (this attempt's, a retry's or a recovered attempt's) finds
  the reservation and skips the effect.
  The reservation names the job's incarnation (its createdAt) and the reserving call's nonce:
  one left by an earlier job under the same id (re-created after its idempotency record
  expired) is not this job's and is taken over; the same call run twice (a re-send, R22) is
  told to run the effect, as its first execution was.

  KEYS[1] job hash
  KEYS[2] side-effect reservation (string "<createdAt>/<nonce>")

  ARGV[1] lease token
  ARGV[2] reservation retention (seconds)
  ARGV[3] this call's nonce

  Returns 1 reserved (run the effect), 0 already reserved (skip it), -1 lease lost.
]]
--- @include "lib/codes"
local jobKey, effectKey = KEYS[1], KEYS[2]
local token, retentionS, nonce = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local rcall = redis.call

local f = rcall("HMGET", jobKey, "token", "createdAt")
if f[1] ~= token then return LEASE_LOST end
local incarnation = f[2] .. "/"
local held = rcall("GET", effectKey)
if held == incarnation .. nonce then return DONE end
if held and (string.sub(held, 1, #incarnation) == incarnation or not string.find(held, "/", 1, true))
then
  return SKIPPED  -- reserved by this job already (a reservation of the old form is kept too)
end
rcall("SET", effectKey, incarnation .. nonce, "EX", retentionS)
return DONE
