-- wrk script: POST one durable event per request to one of WORKFLOWS waiting workflows
-- (ids po-0 … po-<WORKFLOWS-1>), each with a fresh Idempotency-Key so none is deduplicated.
local workflows = tonumber(os.getenv("WORKFLOWS") or "1000")
local counter = 0
local thread_tag = tostring(math.random(1, 1e9))

wrk.method = "POST"
wrk.body = '{"note": "load"}'
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local id = "po-" .. tostring(counter % workflows)
  wrk.headers["Idempotency-Key"] = thread_tag .. "-" .. tostring(counter)
  return wrk.format(nil, "/v1/workflows/" .. id .. "/events/note")
end

-- Count non-2xx answers: a refused event is not a durable delivery.
local failures = 0
response = function(status, headers, body)
  if status ~= 202 then failures = failures + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("requests %d, errors (status != 202 or socket) %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
