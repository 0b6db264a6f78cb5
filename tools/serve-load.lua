-- wrk script for `e5 serve`: single e5 queries from benches/workload.jsonl, round-robin,
-- through the OpenAI route. The C load generator leaves more of a 2-core machine to the
-- server than tools/serve-load.py does.
--   wrk -t1 -c64 -d20s --latency -s tools/serve-load.lua http://127.0.0.1:8080
local queries = {}
for line in io.lines("benches/workload.jsonl") do
  local text = line:match('"text"%s*:%s*"(.-)"%s*,%s*"kind"%s*:%s*"query"')
  if text then queries[#queries + 1] = text end
end
assert(#queries > 0, "no queries in benches/workload.jsonl")
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #queries + 1
  return wrk.format(nil, "/v1/embeddings", nil,
    '{"model":"e5","input_type":"query","input":"' .. queries[i] .. '"}')
end
done = function(summary, latency)
  io.write(string.format("requests %d, non-2xx %d, p50 %.1f ms, p99 %.1f ms\n", summary.requests,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
