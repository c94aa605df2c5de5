--[[
  lib/events: tell whoever waits on jobs (long polls, SSE streams, `jobq status --wait`) that
  some jobs of this queue changed. Only while someone watches: the stream exists only while a
  watcher's reader keeps it alive (it expires a few seconds after the last reader is gone), so
  with nobody waiting this costs one EXISTS. Then one XADD per script call, whatever the number
  of jobs, to the queue's event stream (`eventsKey` from KEYS, in the queue's hash tag), capped
  near EVENTS_MAXLEN entries (MAXLEN ~: trimmed a node at a time, O(1) amortised). An entry says
  what happened (`e`: completed, failed, delayed, cancelled, active, progress) and to which
  jobs (`ids`, a JSON array); readers then read the jobs themselves.
]]
local EVENTS_MAXLEN = 1000
local function jobEvent(eventsKey, what, ids)
  if #ids == 0 or redis.call("EXISTS", eventsKey) == 0 then return end
  redis.call("XADD", eventsKey, "MAXLEN", "~", EVENTS_MAXLEN, "*", "e", what,
    "ids", cjson.encode(ids))
end
