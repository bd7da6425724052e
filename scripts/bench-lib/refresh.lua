-- wrk script for the refresh row of scripts/bench: POST /oauth2/token grant_type=refresh_token
-- where every token is used once. Gotthard rotates refresh tokens on every use (a second use of
-- one is reuse and revokes its family), so each answer's new refresh_token is put back in a
-- pool and sent on the next request: one chain per connection, as a relying party refreshing
-- in a loop would. The same JSON summary as the peer's wrk.lua is written to $WRK_OUT.
--   WRK_AUTH         Authorization header (client_secret_basic)
--   WRK_TOKEN_FILE   file with one refresh token per line: one per connection plus one per
--                    thread (spread over the threads in setup). The spare is needed: wrk calls
--                    request() once on the first thread to check the script, and that
--                    token is never sent. A connection left without a token sends
--                    "none-left" (a 400, counted by wrk) and the run reports how often.
--   WRK_SHOW_ERRORS  print the first N answers without a refresh token to stderr (per thread)

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

local threads = {}
local all = {}
local file = os.getenv("WRK_TOKEN_FILE")
if file and file ~= "" then
  for line in io.lines(file) do
    if line ~= "" then table.insert(all, line) end
  end
end

-- Thread i (of WRK_THREADS) takes tokens i, i + n, i + 2n, …; wrk gives each thread
-- connections / threads connections, so each needs that many tokens.
function setup(thread)
  table.insert(threads, thread)
  local n = tonumber(os.getenv("WRK_THREADS") or "1")
  local i = #threads - 1
  local mine = {}
  for j = i + 1, #all, n do table.insert(mine, all[j]) end
  thread:set("tokens", table.concat(mine, " "))
end

-- In each thread's own Lua state: its tokens, free to send.
local pool = {}
misses = 0
lost = 0
function init(args)
  for token in string.gmatch(tokens or "", "%S+") do table.insert(pool, token) end
end

function request()
  local token = table.remove(pool)
  if not token then
    lost = lost + 1
    token = "none-left"
  end
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end

local show = tonumber(os.getenv("WRK_SHOW_ERRORS") or "0")
function response(status, headers, body)
  local token = body and string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
  if token then
    table.insert(pool, token)
  else
    if status == 200 then
      misses = misses + 1 -- a 200 without a new refresh token (wrk counts the other statuses)
    end
    if show > 0 then
      show = show - 1
      io.stderr:write(string.format("refresh answered %d: %s\n", status, body or ""))
    end
  end
end

function done(summary, latency, requests)
  local out = os.getenv("WRK_OUT")
  if not out or out == "" then return end
  local missed, without = 0, 0
  for _, thread in ipairs(threads) do
    missed = missed + (tonumber(thread:get("misses")) or 0)
    without = without + (tonumber(thread:get("lost")) or 0)
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local f = assert(io.open(out, "w"))
  f:write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_4xx_5xx":%d,"body_mismatch":%d},'
      .. '"requests_without_token":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    e.connect, e.read, e.write, e.timeout, e.status, missed, without))
  f:close()
end
