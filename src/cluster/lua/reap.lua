-- comet reaper, one page: every named channel whose index score is still
-- below now (re-checked here: a publish may have raised it since the page was
-- read) is freed: removed from the index, meta and history deleted (icomet:
-- a freed channel's seq restarts at 1), "0 <cname>" on psub and
-- "<e> <next> f" on the channel, so nodes holding it recreate it.
--
-- KEYS[1] = <p>:online, then per channel i: KEYS[2i] = meta, KEYS[2i+1] = hist
-- ARGV[1] = psub channel, ARGV[2] = "<p>:{", then the cnames
-- Returns the number freed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local freed = 0
for i = 3, #ARGV do
  local cname = ARGV[i]
  local k = 2 * (i - 2)
  local score = redis.call('ZSCORE', KEYS[1], cname)
  if score and tonumber(score) < now then
    local m = redis.call('HMGET', KEYS[k], 'e', 's')
    local nxt = tonumber(m[2] or '0') + 1
    if nxt > 2147483647 then nxt = nxt - 4294967296 end
    redis.call('DEL', KEYS[k], KEYS[k + 1])
    redis.call('ZREM', KEYS[1], cname)
    redis.call('PUBLISH', ARGV[1], '0 ' .. cname)
    redis.call('PUBLISH', ARGV[2] .. cname .. '}', (m[1] or '-') .. ' ' .. nxt .. ' f')
    freed = freed + 1
  end
end
return freed
