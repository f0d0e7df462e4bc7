-- comet history read: the epoch, the top seq, and the history entries with
-- seq after ARGV[1] (all of them when ARGV[1] is empty). The list always
-- holds consecutive seqs ending at the top, so "after" is a count from the
-- end, computed with wrapping i32 arithmetic.
--
-- KEYS[1] = meta, KEYS[2] = hist; ARGV[1] = after seq or ""
-- Returns {epoch or nil, top seq, entry...}; {nil, 0} when the channel has no state.
local m = redis.call('HMGET', KEYS[1], 'e', 's')
if not m[1] then return {false, 0} end
local top = tonumber(m[2] or '0')
local out = {m[1], top}
local len = redis.call('LLEN', KEYS[2])
if len == 0 then return out end
local take = len
if ARGV[1] ~= '' then
  local d = top - tonumber(ARGV[1])
  if d > 2147483647 then d = d - 4294967296 elseif d < -2147483648 then d = d + 4294967296 end
  if d <= 0 then return out end
  if d < take then take = d end
end
local entries = redis.call('LRANGE', KEYS[2], -take, -1)
for i = 1, #entries do out[#out + 1] = entries[i] end
return out
