-- wrk script of bench/bench_serving.py: POST JSON bodies taken in turn from a file.
--
-- wrk -s bench/serving_wrk.lua URL -- BODIES_FILE [TOKEN]
-- BODIES_FILE holds one JSON request body per line; each thread starts at its own offset and
-- cycles through them. TOKEN, if given, is sent as "Authorization: Bearer TOKEN".
-- done() prints one line "WRK_RESULT {json}" with the counts and latency percentiles
-- (microseconds), including non-2xx responses and the status and body of the first one.

local threads = {}
local pool = {}
local position = 0

non2xx = 0
first_status = 0
first_body = ""

function setup(thread)
   thread:set("thread_number", #threads)
   table.insert(threads, thread)
end

function init(args)
   local path, token = args[1], args[2]
   if path == nil then
      error("usage: wrk -s serving_wrk.lua URL -- BODIES_FILE [TOKEN]")
   end
   local headers = { ["Content-Type"] = "application/json" }
   if token ~= nil and token ~= "" then
      headers["Authorization"] = "Bearer " .. token
   end
   for line in io.lines(path) do
      if #line > 0 then
         pool[#pool + 1] = wrk.format("POST", nil, headers, line)
      end
   end
   if #pool == 0 then
      error(path .. ": no request bodies")
   end
   position = ((thread_number or 0) * 61) % #pool
end

function request()
   position = position % #pool + 1
   return pool[position]
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_status == 0 then
         first_status = status
         first_body = string.sub(body or "", 1, 600)
      end
   end
end

local function json_string(text)
   local escaped = string.gsub(text, '[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. escaped .. '"'
end

function done(summary, latency, requests)
   local failed, status, body = 0, 0, ""
   for _, thread in ipairs(threads) do
      failed = failed + thread:get("non2xx")
      if status == 0 and thread:get("first_status") ~= 0 then
         status = thread:get("first_status")
         body = thread:get("first_body")
      end
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_RESULT {"duration_us": %d, "requests": %d, "non2xx": %d, "connect_errors": %d, '
         .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, '
         .. '"p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
         .. '"first_error_status": %d, "first_error_body": %s}\n',
      summary.duration, summary.requests, failed, errors.connect, errors.read, errors.write,
      errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean, status, json_string(body)))
end
