-- wrk script: POST one durable event per request to one of WORKFLOWS waiting workflows
-- (ids po-0 … po-<WORKFLOWS-1>), each with a fresh Idempotency-Key so none is deduplicated.
local workflows = tonumber(os.getenv("WORKFLOWS") or "1000")
local counter = 0
-- Each thread's keys carry the thread's own number, given by setup: math.random is not seeded
-- per thread, so a random tag came out the same in every thread, and the threads sent each
-- other's keys (about half the requests were duplicates, answered 200).
local threads = {}
setup = function(thread)
  thread:set("tag", os.time() .. "-" .. #threads)
  table.insert(threads, thread)
end

wrk.method = "POST"
wrk.body = '{"note": "load"}'
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local id = "po-" .. tostring(counter % workflows)
  wrk.headers["Idempotency-Key"] = tag .. "-" .. tostring(counter)
  return wrk.format(nil, "/v1/workflows/" .. id .. "/events/note")
end

-- Count answers other than 202: a duplicate (200) or a refusal is not a new durable delivery.
failures = 0
response = function(status, headers, body)
  if status ~= 202 then failures = failures + 1 end
end

done = function(summary, latency, requests)
  local not202 = 0
  for _, thread in ipairs(threads) do not202 = not202 + thread:get("failures") end
  io.write(string.format("requests %d, not 202 %d, socket errors %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests, not202, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
