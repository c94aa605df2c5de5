--[[
  lib/claim_call: claim's side of lib/calls, shared by claim and complete_claim. The record of
  a claim keeps its answer's head (now, nextDue, held counts, throttled) and the (jobId, token)
  pairs it leased, not the payloads: answering it again reads the jobs back, those whose lease
  is still that token.
]]
--- @include "lib/calls"
--- @include "lib/give_back"
local CLAIM_HEAD = 5        -- values before the first leased job in claim's answer
local CLAIM_JOB_FIELDS = 9  -- values per leased job

local function claimRecord(out)
  if type(out) == "number" then return {paused = out, leased = {}} end
  local head, leased = {}, {}
  for i = 1, CLAIM_HEAD do head[i] = out[i] end
  for i = CLAIM_HEAD + 1, #out, CLAIM_JOB_FIELDS do
    leased[#leased + 1] = out[i]
    leased[#leased + 1] = out[i + 1]
  end
  return {head = head, leased = leased}
end

local function claimAgain(rec, jobPrefix)
  if rec.paused then return rec.paused end
  local out = {}
  for i = 1, CLAIM_HEAD do out[i] = rec.head[i] end
  for i = 1, #rec.leased, 2 do
    local jobId, token = rec.leased[i], rec.leased[i + 1]
    local f = redis.call("HMGET", jobPrefix .. jobId, "token", "type", "payload", "maxAttempts",
      "backoff", "readyAt", "timeoutS")
    if f[1] == token then
      local attempt = tonumber(string.match(token, ":(%d+)$"))
      for _, v in ipairs({jobId, token, f[2], f[3], attempt, f[4], f[5], f[6], f[7] or ""}) do
        out[#out + 1] = v
      end
    end
  end
  return out
end

-- The jobs of a recorded claim whose answer its caller never received go back in line.
local function giveBackUnheard(rec, acked, base, activeKey, now)
  if rec.seq == acked then return end
  for i = 1, #rec.leased, 2 do
    giveBack(base, activeKey, base .. ":cancelled", rec.leased[i], rec.leased[i + 1], now)
  end
end
