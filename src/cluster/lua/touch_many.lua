-- comet touch of many channels at once: sign.lua's "create if absent and
-- raise the index expiry" for each (a node recreating the channels it holds
-- after Redis lost them), without the /sign answer.
--
-- KEYS[1] = <p>:online, KEYS[2i] = meta, KEYS[2i+1] = hist of channel i
-- ARGV[1] = psub channel, ARGV[2] = ttl ms, then per channel i:
-- ARGV[2i+1] = cname, ARGV[2i+2] = a new epoch
-- Returns how many channels it created.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local created = 0
for i = 1, (#ARGV - 2) / 2 do
  local meta, hist = KEYS[2 * i], KEYS[2 * i + 1]
  local cname, epoch = ARGV[2 * i + 1], ARGV[2 * i + 2]
  if not redis.call('HGET', meta, 'e') then
    redis.call('HSET', meta, 'e', epoch, 's', 0)
    redis.call('DEL', hist)
    created = created + 1
  end
  if redis.call('ZADD', KEYS[1], 'GT', now + ttl, cname) == 1 then
    redis.call('PUBLISH', ARGV[1], '1 ' .. cname)
  end
end
return created
