--[[
  lib/calls: a caller's last claim or reclaim, recorded so that running the same call twice
  changes nothing (R22). A call carries its caller's sequence number (one more per call) and
  the last number whose answer the caller received. The record (a string at the caller's
  key, "<seq>|<JSON>", expiring after CALL_RECORD_TTL_MS) holds the last call's number and what
  is needed to answer it again:
  - the same number again (a re-send after a timeout or a dropped connection): the recorded
    answer, nothing done;
  - an older number (a re-send overtaken by a later call): CALL_STALE, nothing done;
  - a newer one: the recorded call's answer never reached the caller when its number is not
    the one acknowledged; the calling script hands its jobs back (claim) or answers them again
    (reclaim), then runs.
  A call that leased nothing writes no record (and drops its caller's earlier one, already
  dealt with): idle workers write nothing.
]]
--- @include "lib/codes"
local CALL_RECORD_TTL_MS = 120000  -- jobq.keys.CALL_RECORD_TTL_MS (a test compares them)
local function readCall(recKey)
  local raw = redis.call("GET", recKey)
  if not raw then return nil end
  local seq, body = string.match(raw, "^(%d+)|(.*)$")
  local rec = cjson.decode(body)
  rec.seq = tonumber(seq)
  return rec
end
local function writeCall(recKey, seq, rec)
  redis.call("SET", recKey, seq .. "|" .. cjson.encode(rec), "PX", CALL_RECORD_TTL_MS)
end
local function dropCall(recKey)
  redis.call("DEL", recKey)
end
