-- comet index and registry reads/writes that need Redis's clock (so nodes
-- with skewed clocks agree). ARGV[1] selects the operation.
--
-- "check"   KEYS[1] = online; ARGV[2..] = cnames -> 1/0 per name (score >= now)
-- "refresh" KEYS[1] = online; ARGV[2..] = cname, remaining ms, ... ->
--           ZADD XX GT now + remaining (never re-adds a freed channel);
--           returns how many members were raised
-- "expired" KEYS[1] = online; ARGV[2] = limit -> cnames with score < now
-- "count"   KEYS[1] = online -> channels with score >= now
-- "report"  KEYS[1] = nodes; ARGV[2] = node, ARGV[3] = subscribers,
--           ARGV[4] = channels -> HSET node "<now> <subs> <chans>"; returns now
-- "totals"  KEYS[1] = nodes, KEYS[2] = online; ARGV[2] = stale ms ->
--           {channels, subscribers of live nodes, live node ids...}
-- "prune"   KEYS[1] = nodes; ARGV[2] = max age ms -> HDEL older entries; count
-- "lock"    KEYS[1] = reaper; ARGV[2] = node, ARGV[3] = ms -> 1 if this node
--           holds (took or renewed) the lock, else 0
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if op == 'check' then
  local names = {}
  for i = 2, #ARGV do names[#names + 1] = ARGV[i] end
  local scores = redis.call('ZMSCORE', KEYS[1], unpack(names))
  local out = {}
  for i = 1, #names do
    if scores[i] and tonumber(scores[i]) >= now then out[i] = 1 else out[i] = 0 end
  end
  return out
elseif op == 'refresh' then
  local args = {'XX', 'GT', 'CH'}
  for i = 2, #ARGV, 2 do
    args[#args + 1] = now + tonumber(ARGV[i + 1])
    args[#args + 1] = ARGV[i]
  end
  return redis.call('ZADD', KEYS[1], unpack(args))
elseif op == 'expired' then
  return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[2]))
elseif op == 'count' then
  return redis.call('ZCOUNT', KEYS[1], now, '+inf')
elseif op == 'report' then
  redis.call('HSET', KEYS[1], ARGV[2], now .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
  return now
elseif op == 'totals' then
  local oldest = now - tonumber(ARGV[2])
  local all = redis.call('HGETALL', KEYS[1])
  local subs = 0
  local out = {redis.call('ZCOUNT', KEYS[2], now, '+inf'), 0}
  for i = 1, #all, 2 do
    local ts, s = string.match(all[i + 1], '^(%d+) (%d+) %d+$')
    if ts and tonumber(ts) >= oldest then
      subs = subs + tonumber(s)
      out[#out + 1] = all[i]
    end
  end
  out[2] = subs
  return out
elseif op == 'prune' then
  local oldest = now - tonumber(ARGV[2])
  local all = redis.call('HGETALL', KEYS[1])
  local n = 0
  for i = 1, #all, 2 do
    local ts = string.match(all[i + 1], '^(%d+) ')
    if not ts or tonumber(ts) < oldest then
      redis.call('HDEL', KEYS[1], all[i])
      n = n + 1
    end
  end
  return n
elseif op == 'lock' then
  local holder = redis.call('GET', KEYS[1])
  if not holder or holder == ARGV[2] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
    return 1
  end
  return 0
end
return redis.error_reply('comet index.lua: unknown op ' .. tostring(op))
