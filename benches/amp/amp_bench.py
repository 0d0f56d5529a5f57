"""Twisted AMP peer of osmesh-bench: ListOperatingSystems over AMP, as MAAS 1.7 spoke it.

    amp_bench.py server                 listens on 127.0.0.1 (an ephemeral port), prints "PORT <n>"
    amp_bench.py client --port N --calls C [--depth D]
                                        calls ListOperatingSystems C times, D in flight (1 is
                                        sequential), and prints one JSON line of figures

The reply is the same as the Rust peers': 5 operating systems with 4 releases each, carried
with AMP's own argument types (an AmpList of OS entries with a nested AmpList of releases),
the shape MAAS's `ListOperatingSystems` command used. TCP_NODELAY is set on both ends.
"""

import argparse
import json
import sys
import time

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols import amp


class ListOperatingSystems(amp.Command):
    arguments = []
    response = [
        (
            b"osystems",
            amp.AmpList(
                [
                    (b"name", amp.Unicode()),
                    (b"title", amp.Unicode()),
                    (
                        b"releases",
                        amp.AmpList(
                            [
                                (b"name", amp.Unicode()),
                                (b"title", amp.Unicode()),
                                (b"requires_license_key", amp.Boolean()),
                                (b"can_commission", amp.Boolean()),
                            ]
                        ),
                    ),
                    (b"default_release", amp.Unicode(optional=True)),
                    (b"default_commissioning_release", amp.Unicode(optional=True)),
                ]
            ),
        )
    ]


def os_list():
    """The same reply as the Rust peers' `os_list()`."""
    return [
        {
            "name": f"os{o}",
            "title": f"Operating System {o}",
            "releases": [
                {
                    "name": f"release{r}",
                    "title": f'OS {o} release {r} "Some Codename"',
                    "requires_license_key": r == 0,
                    "can_commission": r % 2 == 0,
                }
                for r in range(4)
            ],
            "default_release": "release1",
            "default_commissioning_release": "release0",
        }
        for o in range(5)
    ]


class Cluster(amp.AMP):
    """The answering side, as a MAAS cluster's RPC service was."""

    reply = {"osystems": os_list()}

    def connectionMade(self):
        super().connectionMade()
        self.transport.setTcpNoDelay(True)

    @ListOperatingSystems.responder
    def list_operating_systems(self):
        return self.reply


class Region(amp.AMP):
    def connectionMade(self):
        super().connectionMade()
        self.transport.setTcpNoDelay(True)


def serve():
    factory = protocol.Factory.forProtocol(Cluster)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    print(f"PORT {port.getHost().port}", flush=True)
    reactor.run()


@defer.inlineCallbacks
def measure(proto, calls, depth):
    latencies = []
    done = defer.Deferred()
    state = {"issued": 0, "finished": 0}

    def issue():
        state["issued"] += 1
        started = time.perf_counter()
        d = proto.callRemote(ListOperatingSystems)
        d.addCallback(finish, started)
        d.addErrback(done.errback)

    def finish(reply, started):
        latencies.append(time.perf_counter() - started)
        if len(reply["osystems"]) != 5:
            raise ValueError("short reply")
        state["finished"] += 1
        if state["issued"] < calls:
            issue()
        elif state["finished"] == calls and not done.called:
            done.callback(None)

    started = time.perf_counter()
    for _ in range(min(depth, calls)):
        issue()
    yield done
    total = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) * p // 100, len(latencies) - 1)] * 1e6

    return {
        "calls": calls,
        "depth": depth,
        "seconds": total,
        "calls_per_sec": calls / total,
        "p50_us": pct(50),
        "p99_us": pct(99),
        "max_us": latencies[-1] * 1e6,
    }


@defer.inlineCallbacks
def run_client(port, calls, depth):
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    proto = yield connectProtocol(endpoint, Region())
    # Warm up: the first calls pay for imports, allocation and TCP slow start.
    yield measure(proto, min(100, calls), 1)
    figures = yield measure(proto, calls, depth)
    print(json.dumps(figures), flush=True)
    proto.transport.loseConnection()


def client(port, calls, depth):
    result = {"code": 0}

    def stop(outcome):
        if isinstance(outcome, Exception) or hasattr(outcome, "getErrorMessage"):
            print(f"amp client failed: {outcome}", file=sys.stderr)
            result["code"] = 1
        reactor.stop()

    reactor.callWhenRunning(lambda: run_client(port, calls, depth).addBoth(stop))
    reactor.run()
    return result["code"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    sub.add_parser("server")
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--calls", type=int, required=True)
    c.add_argument("--depth", type=int, default=1)
    args = parser.parse_args()
    if args.role == "server":
        serve()
        return 0
    return client(args.port, args.calls, args.depth)


if __name__ == "__main__":
    sys.exit(main())
