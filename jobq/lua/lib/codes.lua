--[[
  lib/codes: the answers every script shares. jobq.scripts holds the same names and values
  (a test compares them) and maps the negative ones to exceptions in one place.
]]
local CREATED = 0      -- enqueue, replay: a new job was stored
local DUPLICATE = 1    -- enqueue, replay: the key is known with the same content (R2)
local DONE = 1         -- one item of a batched call (renew, complete), or reserve: it went through
local SKIPPED = 0      -- reserve: an earlier attempt already reserved the side effect (R8)
local LEASE_LOST = -1  -- the lease token is no longer current: the write was refused (R3)
local CONFLICT = -2    -- the idempotency key is known with other content (R2)
local NOT_FOUND = -3   -- replay: no such DLQ entry
local PAUSED = -4       -- claim: the queue is paused, nothing was leased
local CANCEL_REQUESTED = 2  -- renew: renewed, and the job was asked to cancel
local FINISHED = -5    -- cancel: the job has finished already, nothing to cancel
local CALL_STALE = -6    -- claim, reclaim: a re-sent copy overtaken by a later call; nothing done
