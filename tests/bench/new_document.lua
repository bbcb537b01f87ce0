-- wrk script: every request POSTs a NEW document, built from a template file whose text holds the
-- placeholders __MSGID__ (a fresh UUID) and __UNIQ__ (17 unique upper-case hex digits: the run's nonce,
-- the thread, a counter), so no request is a duplicate of another.
--
-- Environment: WRK_TEMPLATE (template file), WRK_TOKEN (bearer token), WRK_NONCE (8 hex digits, new per
-- run), WRK_OUT (where done() writes its JSON summary: requests, errors, latency percentiles in µs,
-- responses per status and the message_id of every 202).

local template_path = os.getenv("WRK_TEMPLATE")
local token = os.getenv("WRK_TOKEN")
local nonce = os.getenv("WRK_NONCE")
local out_path = os.getenv("WRK_OUT")

local threads = {}
local next_tid = 1

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

local pieces = {}
local names = {}
local tail = ""
local n = 0
statuses = {}
accepted = {}

function init(args)
   local f = assert(io.open(template_path, "rb"))
   local text = f:read("*a")
   f:close()
   local pos = 1
   while true do
      local s, e, name = string.find(text, "__(%u+)__", pos)
      if not s then break end
      table.insert(pieces, string.sub(text, pos, s - 1))
      table.insert(names, name)
      pos = e + 1
   end
   tail = string.sub(text, pos)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
   n = n + 1
   local values = {
      MSGID = string.format("%s-%04x-4000-8000-%012x", nonce, tid, n),
      UNIQ = string.format("%s%X%08X", string.upper(nonce), tid % 16, n),
   }
   local buf = {}
   for i = 1, #pieces do
      buf[#buf + 1] = pieces[i]
      buf[#buf + 1] = values[names[i]]
   end
   buf[#buf + 1] = tail
   return wrk.format(nil, nil, nil, table.concat(buf))
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 202 and body then
      local id = string.match(body, '"message_id"%s*:%s*"([%x-]+)"')
      if id then accepted[#accepted + 1] = id end
   end
end

function done(summary, latency, requests)
   local by_status = {}
   local ids = {}
   for _, t in ipairs(threads) do
      for status, count in pairs(t:get("statuses") or {}) do
         by_status[status] = (by_status[status] or 0) + count
      end
      for _, id in ipairs(t:get("accepted") or {}) do
         ids[#ids + 1] = '"' .. id .. '"'
      end
   end
   local status_parts = {}
   for status, count in pairs(by_status) do
      status_parts[#status_parts + 1] = string.format('"%d": %d', status, count)
   end
   local e = summary.errors
   local f = assert(io.open(out_path, "w"))
   f:write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "mean": %.1f, "max": %d}, ' ..
      '"statuses": {%s}, "accepted": [%s]}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.mean, latency.max,
      table.concat(status_parts, ", "), table.concat(ids, ", ")))
   f:close()
end
