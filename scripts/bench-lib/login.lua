-- wrk script for the password-login row of scripts/bench: POST /login (form) with the e-mail
-- of one of WRK_USERS accounts in turn, all with the same password, CSRF field and cookie.
-- Many accounts, not one: the lockout gate counts each attempt before argon2 runs, so 32
-- concurrent logins of one account would meet its threshold. A success is a 303; any other
-- answer below 400 (the form again) is counted as a wrong answer, 4xx/5xx by wrk itself.
-- The same JSON summary as the peer's wrk.lua is written to $WRK_OUT.
--   WRK_USERS      accounts bench1@example.com … benchN@example.com
--   WRK_PASSWORD   their password
--   WRK_CSRF       the login form's hidden csrf value
--   WRK_COOKIE     the Cookie header (gotthard_csrf=…)

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Cookie"] = os.getenv("WRK_COOKIE")

local users = tonumber(os.getenv("WRK_USERS") or "64")
local function encode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
local tail = "%40example.com&password=" .. encode(os.getenv("WRK_PASSWORD") or "")
  .. "&csrf=" .. encode(os.getenv("WRK_CSRF") or "")

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("offset", #threads * 7919)
end

local n = 0
misses = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, "email=bench" .. ((n + (offset or 0)) % users + 1) .. tail)
end

function response(status, headers, body)
  if status ~= 303 and status < 400 then misses = misses + 1 end
end

function done(summary, latency, requests)
  local out = os.getenv("WRK_OUT")
  if not out or out == "" then return end
  local missed = 0
  for _, thread in ipairs(threads) do
    missed = missed + (tonumber(thread:get("misses")) or 0)
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local f = assert(io.open(out, "w"))
  f:write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_4xx_5xx":%d,"body_mismatch":%d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    e.connect, e.read, e.write, e.timeout, e.status, missed))
  f:close()
end
