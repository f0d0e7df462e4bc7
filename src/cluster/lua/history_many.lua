-- comet history read of many channels at once (a node syncing the channels
-- Redis confirmed after a reconnect): history.lua's answer for each.
--
-- KEYS[2i-1] = meta, KEYS[2i] = hist of channel i; ARGV[i] = its after seq
-- or "" (all entries).
-- Returns one {epoch or false, top seq, entry...} per channel, in order.
local out = {}
for i = 1, #ARGV do
  local meta, hist = KEYS[2 * i - 1], KEYS[2 * i]
  local m = redis.call('HMGET', meta, 'e', 's')
  if not m[1] then
    out[i] = {false, 0}
  else
    local top = tonumber(m[2] or '0')
    local one = {m[1], top}
    local len = redis.call('LLEN', hist)
    local take = len
    if ARGV[i] ~= '' and len > 0 then
      local d = top - tonumber(ARGV[i])
      if d > 2147483647 then d = d - 4294967296 elseif d < -2147483648 then d = d + 4294967296 end
      if d <= 0 then take = 0 elseif d < take then take = d end
    end
    if take > 0 then
      local entries = redis.call('LRANGE', hist, -take, -1)
      for j = 1, #entries do one[#one + 1] = entries[j] end
    end
    out[i] = one
  end
end
return out
