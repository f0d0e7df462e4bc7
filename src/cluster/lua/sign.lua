-- comet sign/touch: create the channel's state if absent (a new epoch, seq 0,
-- empty history), raise its index expiry to at least now + ttl ("1 <cname>"
-- on psub when the member is new), and return icomet's /sign seq: the oldest
-- seq still in history (next seq minus min(history length, size)).
--
-- KEYS[1] = meta, KEYS[2] = hist, KEYS[3] = <p>:online
-- ARGV[1] = cname, ARGV[2] = new epoch, ARGV[3] = ttl ms, ARGV[4] = psub
-- channel, ARGV[5] = history size
-- Returns {oldest seq, epoch, created (1/0)}.
local e = redis.call('HGET', KEYS[1], 'e')
local created = 0
if not e then
  e = ARGV[2]
  redis.call('HSET', KEYS[1], 'e', e, 's', 0)
  redis.call('DEL', KEYS[2])
  created = 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZADD', KEYS[3], 'GT', now + tonumber(ARGV[3]), ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[4], '1 ' .. ARGV[1])
end
local s = tonumber(redis.call('HGET', KEYS[1], 's') or '0')
local len = redis.call('LLEN', KEYS[2])
local size = tonumber(ARGV[5])
if len > size then len = size end
local nxt = s + 1
if nxt > 2147483647 then nxt = nxt - 4294967296 end
local oldest = nxt - len
if oldest < -2147483648 then oldest = oldest + 4294967296 end
return {oldest, e, created}
