--[[
  lib/idempotency: has this idempotency key been used (R2)? Shared by enqueue and replay, so
  both answer a repeat alike. The record expires after the key retention; the job keeps its own
  copy of the fingerprint ("fp"), so a repeat is recognised for as long as either exists.

  Returns nil for an unused key, DUPLICATE (same content) or CONFLICT (other content); CREATED
  when the job was created by this very call (its nonce, "enq"): the call ran twice (R22).
]]
--- @include "lib/codes"
local function idempotencyVerdict(idemKey, jobKey, fingerprint, nonce)
  local known = redis.call("GET", idemKey) or redis.call("HGET", jobKey, "fp")
  if not known then return nil end
  if known == fingerprint then
    if redis.call("HGET", jobKey, "enq") == nonce then return CREATED end
    return DUPLICATE
  end
  return CONFLICT
end
