/**
 * The Lua script behind `publishCatalog()` and `refreshPresence()`
 * (src/tool-exec/catalog-parts.ts): a tools worker's part of the catalog and
 * its entry in the publishers' index, written or kept alive in one atomic
 * step on Redis's own clock, so no reader's or writer's clock skew matters.
 * It also drops every other publisher whose life has run out, and says so on
 * the change channel, so readers learn of a dead worker within a refresh.
 *
 * KEYS[1]  this worker's part (`{<ns>:tools:catalog:parts}:<pool>:<workerId>`, in KEYS[2]'s cluster slot)
 * KEYS[2]  the publishers' index (`<ns>:tools:catalog:parts`, a sorted set)
 * ARGV[1]  this worker's index member (`<pool>/<workerId>/<hash16>`)
 * ARGV[2]  the part's life in ms (refreshed well within it)
 * ARGV[3]  the index's own life in ms (so an index whose every worker died goes too)
 * ARGV[4]  the change channel
 * ARGV[5]  the part (JSON) to publish, or "" to only refresh its life
 * ARGV[6]  the member this worker published before, removed when it differs, or ""
 *
 * Returns: -1 when refreshing a part, or a member, that is gone (a restart,
 * an eviction, a member replaced meanwhile: publish it again), else how many
 * expired publishers it dropped.
 */
export const CATALOG_PRESENCE_LUA = `
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local changed = false
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ttl)
  if ARGV[6] ~= '' and ARGV[6] ~= ARGV[1] then redis.call('ZREM', KEYS[2], ARGV[6]) end
  changed = true
elseif redis.call('ZSCORE', KEYS[2], ARGV[1]) == false or redis.call('PEXPIRE', KEYS[1], ttl) == 0 then
  return -1
end
if redis.call('ZADD', KEYS[2], now + ttl, ARGV[1]) == 1 then changed = true end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local gone = redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if changed or gone > 0 then redis.call('PUBLISH', ARGV[4], ARGV[1]) end
return gone
`;
