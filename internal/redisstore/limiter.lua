-- The shared quota limiter of one endpoint family: package quota's algorithm (exact sliding
-- windows over a log of grants, waiters in fair turns between callers) kept in Redis, so that
-- every replica takes from one budget. See limiter.go for the protocol.
--
-- KEYS (one hash tag, so one cluster slot):
--   1 log  ZSET  grants: member "<time>-<n>", score the grant time (microseconds, Redis TIME)
--   2 w    HASH  waiters (reservations): id -> "round|seq|at|maxAt|deadline|caller"
--   3 o    ZSET  reservations pushed out (by a pause or a newcomer): id -> the time it projected
--   4 s    HASH  V (the round being served), seq, id, g (counters), paused (microseconds)
--   5 cn   HASH  caller -> next(c), the earliest round of its next waiter
-- ARGV: 1 op, 2 windows "limit:per_us,limit:per_us", then the op's arguments.
-- Every time is in microseconds of Redis's clock. Numbers are written with %.0f: Lua 5.1's
-- tostring keeps 14 digits, too few for microseconds since 1970.

local GRACE = 2000000 -- a reservation this long past its holder's limit is abandoned

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local op = ARGV[1]

local windows, maxPer = {}, 0
for limit, per in string.gmatch(ARGV[2], '(%d+):(%d+)') do
  windows[#windows + 1] = { limit = tonumber(limit), per = tonumber(per) }
  maxPer = math.max(maxPer, tonumber(per))
end

local function num(x) return string.format('%.0f', x) end

local st = redis.call('HMGET', KEYS[4], 'V', 'seq', 'id', 'g', 'paused')
local V, seq, idc, g, paused =
  tonumber(st[1]) or 0, tonumber(st[2]) or 0, tonumber(st[3]) or 0, tonumber(st[4]) or 0, tonumber(st[5]) or 0

-- The log, read lazily: logback(k) is the k-th most recent grant, false if fewer.
local logcache = {}
local function logback(k)
  local v = logcache[k]
  if v == nil then
    local r = redis.call('ZREVRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')
    v = r[2] and tonumber(r[2]) or false
    logcache[k] = v
  end
  return v
end

-- Grant times never go backwards, even if the server's clock does.
local last = logback(1)
if last and last > now then now = last end

-- The queue, in (round, seq) order.
local q = {}
do
  local raw = redis.call('HGETALL', KEYS[2])
  for i = 1, #raw, 2 do
    local r, sq, at, mx, dl, c = string.match(raw[i + 1], '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(.*)$')
    q[#q + 1] = { id = raw[i], round = tonumber(r), seq = tonumber(sq), at = tonumber(at), maxAt = tonumber(mx),
      dl = tonumber(dl), caller = c }
  end
  table.sort(q, function(a, b)
    if a.round ~= b.round then return a.round < b.round end
    return a.seq < b.seq
  end)
end
local removed = {} -- ids whose records go

-- back(ahead, k): the k-th most recent grant counting the first `ahead` waiters as granted at
-- their projected times.
local function back(ahead, k)
  if k <= ahead then return q[ahead - k + 1].at end
  return logback(k - ahead)
end

-- earliest(ahead, at): the earliest time at or after `at` a grant is allowed, counting the
-- first `ahead` waiters as granted at their projected times.
local function earliest(ahead, at)
  at = math.max(at, paused)
  local b = back(ahead, 1)
  if b then at = math.max(at, b) end
  for _, w in ipairs(windows) do
    local e = back(ahead, w.limit)
    if e then at = math.max(at, e + w.per) end
  end
  return at
end

local function tooLate(at, maxAt, dl)
  return at > maxAt or (dl > 0 and at >= dl)
end

local function grant(at)
  g = g + 1
  redis.call('ZADD', KEYS[1], num(at), num(at) .. '-' .. num(g))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(at - maxPer))
  logcache = {}
end

local function queued(c)
  for _, w in ipairs(q) do
    if w.caller == c then return true end
  end
  return false
end

-- forget drops c's next round once it has no waiter and it is no later than the round served.
local function forget(c)
  local nx = tonumber(redis.call('HGET', KEYS[5], c))
  if nx and nx <= V and not queued(c) then redis.call('HDEL', KEYS[5], c) end
end

-- forgetIdle, after the round moved on, forgets every caller as forget does, when there are
-- more callers than waiters (which bounds the callers kept by the queue's length).
local function forgetIdle()
  if redis.call('HLEN', KEYS[5]) <= #q then return end
  local raw = redis.call('HGETALL', KEYS[5])
  local busy = {}
  for _, w in ipairs(q) do busy[w.caller] = true end
  for i = 1, #raw, 2 do
    if not busy[raw[i]] and tonumber(raw[i + 1]) <= V then redis.call('HDEL', KEYS[5], raw[i]) end
  end
end

local function served(round)
  if round > V then
    V = round
    forgetIdle()
  end
end

-- leave takes the waiter at i out unserved: each later waiter of its caller moves up into the
-- place of the one before it, and the caller gives up its last place.
local function leave(i)
  local w = q[i]
  local c = w.caller
  local hole, round, sq = i, w.round, w.seq
  for j = i + 1, #q do
    local v = q[j]
    if v.caller == c then
      q[hole] = v
      v.round, round = round, v.round
      v.seq, sq = sq, v.seq
      v.dirty = true
      hole = j
    end
  end
  table.remove(q, hole)
  removed[#removed + 1] = w.id
  redis.call('HSET', KEYS[5], c, num(round))
  forget(c)
end

-- reproject recomputes the projected times from index i on; with evict, waiters projected
-- later than they would wait are pushed out (recorded in o for their holders).
local function reproject(i, evict)
  while i <= #q do
    local w = q[i]
    local at = earliest(i - 1, now)
    if at ~= w.at then
      w.at = at
      w.dirty = true
    end
    if evict and tooLate(at, w.maxAt, w.dl) then
      redis.call('ZADD', KEYS[3], num(at), w.id)
      leave(i)
    else
      i = i + 1
    end
  end
end

-- expire drops reservations whose holders must have given up long ago (a replica that died).
local function expire()
  local i, changed = 1, false
  while i <= #q do
    local w = q[i]
    local limit = w.maxAt
    if w.dl > 0 then limit = math.min(limit, w.dl) end
    if limit + GRACE < now then
      leave(i)
      changed = true
    else
      i = i + 1
    end
  end
  if changed then reproject(1, false) end
end

local function find(id)
  for i, w in ipairs(q) do
    if w.id == id then return i end
  end
  return nil
end

local function save()
  for _, id in ipairs(removed) do redis.call('HDEL', KEYS[2], id) end
  for _, w in ipairs(q) do
    if w.dirty then
      redis.call('HSET', KEYS[2], w.id, string.format('%s|%s|%s|%s|%s|%s', num(w.round), num(w.seq), num(w.at),
        num(w.maxAt), num(w.dl), w.caller))
    end
  end
  redis.call('HSET', KEYS[4], 'V', num(V), 'seq', num(seq), 'id', num(idc), 'g', num(g), 'paused', num(paused))
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', num(now - 60000000))
  -- Nothing here outlives the longest window by much once the family falls idle.
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], math.floor(maxPer / 1000) + 60000) end
end

-- outcome of a reservation no longer in line: pushed out (3) or unknown (0).
local function gone(id)
  local at = redis.call('ZSCORE', KEYS[3], id)
  if at then
    redis.call('ZREM', KEYS[3], id)
    return { 3, math.max(tonumber(at) - now, 0), now }
  end
  return { 0, 0, now }
end

local reply
if op == 'take' then
  -- ARGV: 3 caller, 4 maxWait, 5 deadline from now (-1: none)
  local caller, maxWait, dlIn = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  expire()
  if #q == 0 and earliest(0, now) <= now then
    grant(now)
    reply = { 1, now, now }
  else
    local round = V
    local nx = tonumber(redis.call('HGET', KEYS[5], caller))
    if nx then round = math.max(round, nx) end
    local i = 0 -- place: behind every waiter of that round or an earlier one
    while i < #q and q[i + 1].round <= round do i = i + 1 end
    local at = earliest(i, now)
    local maxAt, dl = now + math.max(maxWait, 0), 0
    if dlIn >= 0 then dl = now + dlIn end
    if tooLate(at, maxAt, dl) then
      reply = { 3, at - now, now }
    elseif at <= now then
      -- A slot is free now even counting the waiters ahead as granted at their times (their
      -- holders are about to confirm): take it, in this caller's turn.
      grant(now)
      redis.call('HSET', KEYS[5], caller, num(round + 1))
      served(round)
      reproject(i + 1, true)
      reply = { 1, now, now }
    else
      seq = seq + 1
      idc = idc + 1
      local w = { id = num(idc), round = round, seq = seq, at = at, maxAt = maxAt, dl = dl, caller = caller, dirty = true }
      table.insert(q, i + 1, w)
      redis.call('HSET', KEYS[5], caller, num(round + 1))
      reproject(i + 2, true) -- the waiters it went ahead of move back
      reply = { 2, tonumber(w.id), at, now }
    end
  end
elseif op == 'confirm' then
  -- ARGV: 3 id. The holder's timer fired: grant it if the windows allow it now.
  expire()
  local j = find(ARGV[3])
  if not j then
    reply = gone(ARGV[3])
  else
    local w = q[j]
    local at = earliest(j - 1, now)
    if at <= now then
      grant(now)
      table.remove(q, j)
      removed[#removed + 1] = w.id
      served(w.round)
      forget(w.caller)
      reproject(j, false)
      reply = { 1, now, now }
    elseif tooLate(at, w.maxAt, w.dl) then
      leave(j)
      reproject(j, false)
      reply = { 3, at - now, now }
    else
      if at ~= w.at then
        w.at = at
        w.dirty = true
        reproject(j + 1, false)
      end
      reply = { 2, tonumber(w.id), at, now }
    end
  end
elseif op == 'leave' then
  -- ARGV: 3 id. The holder gave up (its caller went away).
  expire()
  local j = find(ARGV[3])
  if j then
    leave(j)
    reproject(j, false)
    reply = { 0, 0, now }
  else
    reply = gone(ARGV[3])
  end
elseif op == 'refund' then
  -- ARGV: 3 grant time. Removes the most recent grant at or before it; waiters move up.
  local r = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3], '-inf', 'LIMIT', 0, 1)
  local n = 0
  if r[1] then
    n = redis.call('ZREM', KEYS[1], r[1])
    logcache = {}
    reproject(1, false)
  end
  reply = { n, 0, now }
elseif op == 'pause' then
  -- ARGV: 3 duration. No grant before now+duration; waiters pushed past their limits leave.
  local untilAt = now + tonumber(ARGV[3])
  if untilAt > paused then
    paused = untilAt
    reproject(1, true)
  end
  reply = { 0, paused, now }
elseif op == 'record' then
  -- ARGV: 3.. ages of grants made elsewhere (a replica's local budget while Redis was away).
  for k = 3, #ARGV do grant(now - tonumber(ARGV[k])) end
  now = math.max(now, logback(1) or now)
  reproject(1, false)
  reply = { #ARGV - 2, 0, now }
elseif op == 'status' then
  expire()
  reply = { now, earliest(#q, now), 0, #q }
  if paused > now then reply[3] = paused end
  for _, w in ipairs(windows) do
    reply[#reply + 1] = redis.call('ZCOUNT', KEYS[1], '(' .. num(now - w.per), '+inf')
  end
else
  return redis.error_reply('ERR unknown limiter op ' .. tostring(op))
end
if op == 'status' and #removed == 0 then return reply end -- a read: nothing to write
save()
return reply
