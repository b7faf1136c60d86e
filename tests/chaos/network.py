"""PodNetwork: a pod network on one machine, and the faults of a real one.

Each pod is a network namespace with one veth interface (`eth0`) on a bridge
in this machine's namespace, which also holds an address there (the load's
client, as a node outside the mesh would). Pods are grouped into hosts;
a fault acts on every pod of a host, through filter rules (nftables) and
a packet queue (iptables NFQUEUE) inside the pods' own namespaces, so
nothing outside the namespaces this network made is touched.

- `vanish(host)`: every packet to and from the host is dropped, not
  refused: callers see silence, as when a node loses power;
- `partition(a, b)`: a and b drop each other's packets, and both still
  reach every other host;
- `slow(host, delay_ms, jitter_ms)`: each packet that leaves the host waits
  (tests/chaos/delay.py, this kernel has no netem), in order;
- `lossy(host, percent)`: that share of the packets in and out is dropped;
- `heal()`: every rule gone, the queues' delayers stopped.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from deploy.edge_envoy import with_parent

PREFIX = "chaos"
DELAY_QUEUE = 7  # the NFQUEUE number, one queue per pod namespace


class NetworkError(RuntimeError):
    """A namespace, link or rule could not be made: this needs root."""


def _run(*command: str, stdin: str | None = None) -> None:
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(command)}: {done.stderr.strip()}")


@dataclass
class NetPod:
    name: str
    host: str
    netns: str
    veth: str
    address: str


@dataclass
class PodNetwork:
    """`tag` keeps two runs on one machine apart (default: this process id)."""

    tag: str = field(default_factory=lambda: str(os.getpid()))
    pods: dict[str, NetPod] = field(default_factory=dict)
    _delayers: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A /24 of its own per run, 10.x.y.0 from the tag.
        number = int(self.tag) % 60_000
        self.subnet = ipaddress.ip_network(f"10.{100 + number // 256 % 150}.{number % 256}.0/24")
        self.bridge = f"cx{self.tag}"[-15:]
        self.client_address = str(self.subnet[1])

    def create(self) -> None:
        remove_stale()
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.client_address}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def add_pod(self, name: str, host: str) -> NetPod:
        """A namespace with its own address on the bridge, on `host`."""
        index = len(self.pods) + 10
        pod = NetPod(name, host, f"{PREFIX}-{self.tag}-{name}", f"cx{self.tag}v{index}"[-15:], str(self.subnet[index]))
        _run("ip", "netns", "add", pod.netns)
        _run("ip", "link", "add", pod.veth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
        _run("ip", "link", "set", pod.veth, "master", self.bridge, "up")
        _run("ip", "-n", pod.netns, "addr", "add", f"{pod.address}/24", "dev", "eth0")
        _run("ip", "-n", pod.netns, "link", "set", "eth0", "up")
        _run("ip", "-n", pod.netns, "link", "set", "lo", "up")
        self._rules(pod, [], [])
        self.pods[name] = pod
        return pod

    def on_host(self, host: str) -> list[NetPod]:
        return [pod for pod in self.pods.values() if pod.host == host]

    def addresses(self, host: str) -> list[str]:
        return [pod.address for pod in self.on_host(host)]

    def write_hosts_file(self, path: Path, names: dict[str, list[str]]) -> Path:
        """/etc/hosts for every pod: each cluster name with all its pods'
        addresses, as a headless Service resolves."""
        lines = ["127.0.0.1 localhost"]
        for name, pods in names.items():
            lines += [f"{self.pods[pod].address} {name}" for pod in pods]
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- faults --------------------------------------------------------

    def vanish(self, host: str) -> None:
        for pod in self.on_host(host):
            self._rules(pod, ['iifname "eth0" drop'], ['oifname "eth0" drop'])

    def partition(self, a: str, b: str) -> None:
        for near, far in ((a, b), (b, a)):
            others = "{ " + ", ".join(self.addresses(far)) + " }"
            for pod in self.on_host(near):
                self._rules(pod, [f"ip saddr {others} drop"], [f"ip daddr {others} drop"])

    def lossy(self, host: str, percent: int) -> None:
        local = "{ " + ", ".join(self.addresses(host)) + " }"
        drop = f"numgen random mod 100 < {percent} drop"
        for pod in self.on_host(host):
            self._rules(
                pod,
                [f'iifname "eth0" ip saddr != {local} {drop}'],
                [f'oifname "eth0" ip daddr != {local} {drop}'],
            )

    def slow(self, host: str, delay_ms: int, jitter_ms: int) -> None:
        """Every packet leaving the host for another waits delay ± jitter."""
        local = self.addresses(host)
        for pod in self.on_host(host):
            delayer = subprocess.Popen(
                with_parent(
                    ["ip", "netns", "exec", pod.netns, sys.executable, "-m", "tests.chaos.delay",
                     "--queue", str(DELAY_QUEUE), "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms)]
                ),
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            if delayer.stdout is None or delayer.stdout.readline().strip() != "ready":
                raise NetworkError(f"the delayer of {pod.name} did not start")
            self._delayers.append(delayer)
            rules = [f"-A OUTPUT -o eth0 -d {address} -j RETURN" for address in local]
            rules.append(f"-A OUTPUT -o eth0 -j NFQUEUE --queue-num {DELAY_QUEUE} --queue-bypass")
            table = "*filter\n" + "\n".join(rules) + "\nCOMMIT\n"
            _run("ip", "netns", "exec", pod.netns, "iptables-restore", stdin=table)

    def heal(self) -> None:
        for pod in self.pods.values():
            self._rules(pod, [], [])
        if self._delayers:
            for pod in self.pods.values():
                _run("ip", "netns", "exec", pod.netns, "iptables", "-F", "OUTPUT")
            for delayer in self._delayers:
                delayer.terminate()
                delayer.wait()
            self._delayers.clear()

    def _rules(self, pod: NetPod, inbound: list[str], outbound: list[str]) -> None:
        script = ["table inet chaos {}", "delete table inet chaos", "table inet chaos {"]
        script.append("  chain input { type filter hook input priority 0; policy accept;")
        script += [f"    {rule}" for rule in inbound]
        script.append("  }")
        script.append("  chain output { type filter hook output priority 0; policy accept;")
        script += [f"    {rule}" for rule in outbound]
        script += ["  }", "}"]
        _run("ip", "netns", "exec", pod.netns, "nft", "-f", "-", stdin="\n".join(script) + "\n")

    def close(self) -> None:
        for delayer in self._delayers:
            delayer.kill()
        self._delayers.clear()
        for pod in self.pods.values():
            subprocess.run(["ip", "netns", "del", pod.netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        self.pods.clear()


def remove_stale() -> None:
    """Namespaces and bridges left by a run whose process is gone."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    tags = set()
    for line in listed.splitlines():
        name = line.split()[0] if line.strip() else ""
        parts = name.split("-", 2)
        if len(parts) == 3 and parts[0] == PREFIX and parts[1].isdigit() and not _alive(int(parts[1])):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
            tags.add(parts[1])
    for tag in tags:
        subprocess.run(["ip", "link", "del", f"cx{tag}"[-15:]], capture_output=True, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
