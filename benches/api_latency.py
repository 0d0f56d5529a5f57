#!/usr/bin/env python3
"""GET each path N times on one keep-alive connection; print p50/p99/max and who did not answer.

Usage: api_latency.py HOST PORT N PATH..."""
import http.client, time, sys, json, os

# The API wants a token (regiond token create); api3.sh exports it.
HEADERS = {"Authorization": "Bearer " + os.environ["OSMESH_TOKEN"]} if os.environ.get("OSMESH_TOKEN") else {}
host, port = sys.argv[1], int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
def run(path):
    c = http.client.HTTPConnection(host, port)
    lat = []
    for _ in range(n):
        t = time.perf_counter(); c.request("GET", path, headers=HEADERS); r = c.getresponse(); body = r.read(); lat.append((time.perf_counter()-t)*1000)
    lat.sort()
    ans = json.loads(body)
    na = sorted(ans.get("view", {}).get("not_answered", {}).keys())
    print(f"{path:45s} n={n} p50={lat[n//2]:.2f}ms p99={lat[int(n*0.99)-1]:.2f}ms max={lat[-1]:.2f}ms bytes={len(body)} not_answered={na}")
for p in sys.argv[4:]:
    run(p)
