-- Calls in flight shared between replicas, key by key: a short lock per cache entry, held by
-- the replica making the call, and a notification when it is done. See sharing.go.
--
-- KEYS (one hash tag, so one cluster slot):
--   1 the cache entry ("fresh_ms|fetched_ms|expires_ms|notfound|payload", see cache.go)
--   2 the lock: the owner's token, expiring unless the owner extends it
--   3 done: the token of the last owner that answered the key, for a short while
-- ARGV: 1 op, then the op's arguments.

local op = ARGV[1]
if op == 'lock' then
  -- ARGV: 2 token, 3 lock ttl ms, 4 now ms (this replica's clock, as entries' freshness is),
  -- 5 the token of the owner this replica waited for ("" if none).
  -- Reply: {0, entry} answered; {1} locked: call; {2, pttl, owner} another replica is calling.
  local v = redis.call('GET', KEYS[1])
  if v then
    local fresh = tonumber(string.match(v, '^(%d+)|'))
    if (fresh and fresh > tonumber(ARGV[4])) or (ARGV[5] ~= '' and redis.call('GET', KEYS[3]) == ARGV[5]) then
      return { 0, v }
    end
  end
  if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return { 1 } end
  return { 2, redis.call('PTTL', KEYS[2]), redis.call('GET', KEYS[2]) or '' }
elseif op == 'extend' then
  -- ARGV: 2 token, 3 lock ttl ms. The owner is still calling.
  if redis.call('GET', KEYS[2]) == ARGV[2] then return redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
  return 0
elseif op == 'unlock' then
  -- ARGV: 2 token, 3 channel, 4 "1" if the call answered (the entry is its answer), 5 done ttl ms.
  if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
  if ARGV[4] == '1' then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[5]) end
  redis.call('PUBLISH', ARGV[3], KEYS[1])
  return 1
end
return redis.error_reply('ERR unknown share op ' .. tostring(op))
