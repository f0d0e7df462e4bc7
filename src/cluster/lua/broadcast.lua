-- comet broadcast, one page of channels: every channel of the page that is
-- still in the index (score >= now) takes the next seq with a "b" message,
-- stored in its history and published; its index expiry is raised to at
-- least now + ttl (icomet: a broadcast refreshes every channel). Channels
-- that left the index since the page was read are skipped, none is created.
--
-- KEYS[1] = <p>:online, then per channel i: KEYS[2i] = meta, KEYS[2i+1] = hist
-- ARGV[1] = history size, ARGV[2] = index ttl ms, ARGV[3] = "<p>:{",
-- ARGV[4] = escaped content, then per channel: cname, new_epoch
-- Returns the number of channels that got the message.
local size = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
local cpre, content = ARGV[3], ARGV[4]
local reached = 0
local a, k = 5, 2
while a <= #ARGV do
  local cname = ARGV[a]
  local meta, hist = KEYS[k], KEYS[k + 1]
  local score = redis.call('ZSCORE', KEYS[1], cname)
  if score and tonumber(score) >= now then
    local e = redis.call('HGET', meta, 'e')
    if not e then
      e = ARGV[a + 1]
      redis.call('HSET', meta, 'e', e, 's', 0)
      redis.call('DEL', hist)
    end
    local s = redis.call('HINCRBY', meta, 's', 1)
    if s > 2147483647 then
      s = s - 4294967296
      redis.call('HSET', meta, 's', s)
    end
    if size > 0 then
      local len = redis.call('RPUSH', hist, s .. ' b ' .. content)
      if len * 2 >= size * 3 then redis.call('LTRIM', hist, -size, -1) end
    end
    redis.call('ZADD', KEYS[1], 'GT', expiry, cname)
    redis.call('PUBLISH', cpre .. cname .. '}', e .. ' ' .. s .. ' b ' .. content)
    reached = reached + 1
  end
  a = a + 2
  k = k + 2
end
return reached
