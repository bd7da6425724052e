"""A monitoring-like probe for scripts/bench: one keep-alive connection sending one request
every 1/RATE seconds (open loop, not a second flood) for SECONDS, while something else loads
the server. Prints one JSON line: probes, p50/p99/max latency in ms, answers that were not the
expected status.

  python3 probe.py URL SECONDS [--rate 50] [--method POST] [--auth 'Basic …'] [--body 'a=b']
                  [--expect 200] [--expect-body '"active":true']
"""
import argparse
import http.client
import json
import time
import urllib.parse

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("seconds", type=float)
parser.add_argument("--rate", type=float, default=50)
parser.add_argument("--method", default="GET")
parser.add_argument("--auth")
parser.add_argument("--body")
parser.add_argument("--expect", type=int, default=200)
parser.add_argument("--expect-body")
args = parser.parse_args()

url = urllib.parse.urlsplit(args.url)
path = url.path + (f"?{url.query}" if url.query else "")
headers = {}
if args.auth:
    headers["Authorization"] = args.auth
body = args.body.encode() if args.body else None
if body is not None:
    headers["Content-Type"] = "application/x-www-form-urlencoded"

conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
latencies, wrong = [], 0
interval = 1.0 / args.rate
end = time.monotonic() + args.seconds
next_at = time.monotonic()
while time.monotonic() < end:
    t0 = time.perf_counter()
    try:
        conn.request(args.method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read()
        if response.status != args.expect or (
            args.expect_body and args.expect_body.encode() not in text
        ):
            wrong += 1
    except OSError:
        wrong += 1
        conn.close()
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    latencies.append((time.perf_counter() - t0) * 1000)
    next_at += interval
    time.sleep(max(0.0, next_at - time.monotonic()))

latencies.sort()
n = len(latencies)
print(json.dumps({
    "probes": n,
    "rate": args.rate,
    "p50_ms": round(latencies[n // 2], 3) if n else None,
    "p99_ms": round(latencies[min(n - 1, int(n * 0.99))], 3) if n else None,
    "max_ms": round(latencies[-1], 3) if n else None,
    "wrong": wrong,
}))
