-- wrk script for the webhook benchmarks: a JSON POST (BODY, default {"hello":"world"}), an
-- optional per-connection pace (PACE_MS between requests: connections x 1000 / PACE_MS =
-- offered req/s), and one summary line with the figures the issues ask for. "non-2xx" is wrk's
-- own count of answers with a status of 400 or more (none of the targets redirects); a Lua
-- `response` hook would count 3xx too, but costs the client a Lua call and a copy of every
-- answer, which the ceiling's rate would show.
wrk.method = "POST"
wrk.body = os.getenv("BODY") or '{"hello":"world"}'
wrk.headers["content-type"] = "application/json"

local pace = tonumber(os.getenv("PACE_MS") or "0")

function delay()
  return pace
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "%d requests in %.1f s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, errors %d (non-2xx %d)\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors, summary.errors.status))
end
