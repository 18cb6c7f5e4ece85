/**
 * The Lua script of `cancelUnstarted()` (src/tool-exec/idempotency.ts): one
 * atomic step, so no worker can read the request between the checks and the
 * marker. It proves "no worker ever took this request" from what a Redis
 * restart cannot fake (docs/protocol.md §5.4).
 *
 * KEYS[1]  the request stream
 * KEYS[2]  the request's idempotency key (`sg:tools:idem:<idem_key>`)
 * ARGV[1]  the stream's consumer group
 * ARGV[2]  the request's entry id (the XADD's answer)
 * ARGV[3]  the run_id of the Redis that answered the XADD (INFO server)
 * ARGV[4]  the `cancelled` record (JSON)
 * ARGV[5]  the record's TTL in seconds (at least 1)
 *
 * Returns a status string:
 *   "cancelled"  same Redis, the entry is in the stream, never delivered to the
 *                group and not claimed: the record is written (SET NX EX), the
 *                entry deleted (XDEL: no worker will ever read it, whatever its
 *                tool's annotations) and the request will never run
 *   "restarted"  another Redis answers now (a restart, a failover): unproven
 *   "gone"       the entry is not in the stream (trimmed, deleted, lost): unproven
 *   "pending"    a consumer holds the entry (it may be running it)
 *   "delivered"  the group read the entry and acked it (it ran, or was refused)
 *   "claimed"    the idempotency key is already set (running, done, cancelled)
 */
export const CANCEL_UNSTARTED_LUA = `
local runId = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if runId ~= ARGV[3] then return 'restarted' end
if #redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) == 0 then return 'gone' end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  if name == ARGV[1] then
    if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) > 0 then return 'pending' end
    local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
    local ems, eseq = string.match(ARGV[2], '^(%d+)-(%d+)$')
    lms, lseq, ems, eseq = tonumber(lms), tonumber(lseq), tonumber(ems), tonumber(eseq)
    if ems < lms or (ems == lms and eseq <= lseq) then return 'delivered' end
  end
end
if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[5]) then return 'claimed' end
redis.call('XDEL', KEYS[1], ARGV[2])
return 'cancelled'
`;
