-- comet close / clear of one channel. A channel exists while its index score
-- is >= now (the same rule as /check). close: delete meta and history, leave
-- the index, "0 <cname>" on psub, "<e> <next> c" on the channel. clear:
-- delete the history only, "<e> <next> x" on the channel. The epoch is "-"
-- when no meta is left.
--
-- KEYS[1] = meta, KEYS[2] = hist, KEYS[3] = <p>:online
-- ARGV[1] = cname, ARGV[2] = "close" | "clear", ARGV[3] = psub channel,
-- ARGV[4] = the channel's PUB/SUB name
-- Returns the channel's next seq, or nil if it does not exist.
local score = redis.call('ZSCORE', KEYS[3], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not score or tonumber(score) < now then return false end
local m = redis.call('HMGET', KEYS[1], 'e', 's')
local nxt = tonumber(m[2] or '0') + 1
if nxt > 2147483647 then nxt = nxt - 4294967296 end
local e = m[1] or '-'
if ARGV[2] == 'close' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('PUBLISH', ARGV[3], '0 ' .. ARGV[1])
  redis.call('PUBLISH', ARGV[4], e .. ' ' .. nxt .. ' c')
else
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[4], e .. ' ' .. nxt .. ' x')
end
return nxt
