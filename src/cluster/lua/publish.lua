-- comet publish: one or more channels, each with one or more data messages,
-- atomically (Redis runs a script alone). Per channel: the epoch is created
-- if absent (meta and history reset), seq = HINCRBY (wrapping i32), history
-- appended and trimmed icomet's way (at 1.5 x size, back to size), the index
-- touched (one ZADD GT per call; "1 <cname>" on psub for each new member),
-- and ONE PUBLISH carrying every message of the channel ("d" for one, "m"
-- for many).
-- No TTLs: the index and the reaper own expiry (a freed channel's keys are
-- deleted by reap.lua), so nothing is refreshed per message.
--
-- KEYS[1] = <p>:online, then per channel i: KEYS[2i] = meta, KEYS[2i+1] = hist
-- ARGV[1] = history size, ARGV[2] = index ttl ms, ARGV[3] = psub channel,
-- ARGV[4] = channel name prefix "<p>:{", then per channel:
--   cname, new_epoch, n, content_1 .. content_n
-- Returns per channel: first seq, epoch, created (1/0).
local size = tonumber(ARGV[1])
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local psub, cpre = ARGV[3], ARGV[4]
local out = {}
-- The index is touched once per call: which names are new (ZMSCORE), then
-- one ZADD GT for all of them; "1 <cname>" for each new one.
local names, zargs = {}, {'GT'}
local a, k = 5, 2
while a <= #ARGV do
  local cname, n = ARGV[a], tonumber(ARGV[a + 2])
  local meta, hist = KEYS[k], KEYS[k + 1]
  local c0 = a + 3
  local e = redis.call('HGET', meta, 'e')
  local created = 0
  if not e then
    e = ARGV[a + 1]
    redis.call('HSET', meta, 'e', e, 's', 0)
    redis.call('DEL', hist)
    created = 1
  end
  local top = redis.call('HINCRBY', meta, 's', n)
  if top > 2147483647 then
    top = top - 4294967296
    redis.call('HSET', meta, 's', top)
  end
  local first = top - n + 1
  if first < -2147483648 then first = first + 4294967296 end
  if size > 0 and n == 1 then
    local len = redis.call('RPUSH', hist, first .. ' d ' .. ARGV[c0])
    if len * 2 >= size * 3 then redis.call('LTRIM', hist, -size, -1) end
  elseif size > 0 then
    -- The list n single publishes would leave: icomet's rule applied after
    -- each push, so a batch stores exactly what n /push calls would.
    local had = redis.call('LLEN', hist)
    local len = had
    for _ = 1, n do
      len = len + 1
      if len * 2 >= size * 3 then len = size end
    end
    local from = 0
    if len < n then
      redis.call('DEL', hist)
      from = n - len
    end
    local batch = {}
    for i = from, n - 1 do
      local s = first + i
      if s > 2147483647 then s = s - 4294967296 end
      batch[#batch + 1] = s .. ' d ' .. ARGV[c0 + i]
      if #batch == 1000 then
        redis.call('RPUSH', hist, unpack(batch))
        batch = {}
      end
    end
    if #batch > 0 then redis.call('RPUSH', hist, unpack(batch)) end
    if len >= n and had + n > len then redis.call('LTRIM', hist, -len, -1) end
  end
  names[#names + 1] = cname
  zargs[#zargs + 1] = expiry
  zargs[#zargs + 1] = cname
  local payload
  if n == 1 then
    payload = e .. ' ' .. first .. ' d ' .. ARGV[c0]
  else
    local parts = {e, ' ', first, ' m '}
    for i = 0, n - 1 do
      local c = ARGV[c0 + i]
      parts[#parts + 1] = #c
      parts[#parts + 1] = ':'
      parts[#parts + 1] = c
    end
    payload = table.concat(parts)
  end
  redis.call('PUBLISH', cpre .. cname .. '}', payload)
  out[#out + 1] = first
  out[#out + 1] = e
  out[#out + 1] = created
  a = c0 + n
  k = k + 2
end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(names))
redis.call('ZADD', KEYS[1], unpack(zargs))
for i = 1, #names do
  if not scores[i] then redis.call('PUBLISH', psub, '1 ' .. names[i]) end
end
return out
