-- The await chain under wrk: each request a distinct invocation id, the answer checked,
-- at most LIMIT answers per thread (then the thread stops).
-- Arguments (after --): ROUTE ID_PREFIX LIMIT EXPECTED_BODY
local threads = {}

function setup(thread)
  thread:set("number", #threads)
  table.insert(threads, thread)
end

function init(args)
  route, prefix, limit, expected = args[1], args[2], tonumber(args[3]), args[4]
  sent, answered, bad = 0, 0, 0
end

function request()
  sent = sent + 1
  return wrk.format("POST", route .. "?id=" .. prefix .. "-" .. number .. "-" .. sent)
end

function response(status, headers, body)
  answered = answered + 1
  -- Flask ends its JSON with a newline: compare without white space.
  local compact = (body or ""):gsub("%s", "")
  if status ~= 200 or compact ~= expected then
    bad = bad + 1
  end
  if answered >= limit then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local answered_all, bad_all = 0, 0
  for _, thread in ipairs(threads) do
    answered_all = answered_all + thread:get("answered")
    bad_all = bad_all + thread:get("bad")
  end
  io.write(string.format(
    '{"answered":%d,"bad":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%f,"max_us":%d,"socket_errors":%d}\n',
    answered_all, bad_all, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
