"""What the Ray tests see of the cluster's processes, read from /proc: the processes this test
process started (Ray's GCS, raylet, agents and workers are all its descendants), their titles
(a worker running a task calls itself ``ray::<task name>``) and their listening TCP sockets."""

from __future__ import annotations

import ipaddress
import os
import socket

LISTEN = "0A"  # the TCP state column of /proc/net/tcp*


def descendants(root: int | None = None) -> list[int]:
    """The pids of every live process below ``root`` (default: this process)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                    stat = handle.read()
            except OSError:  # gone meanwhile
                continue
            parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [os.getpid() if root is None else root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def title(pid: int) -> str:
    """The process's command line as it shows it (Ray workers rename themselves), '' if gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def state(pid: int) -> str:
    """The process's state letter (R, S, Z, ...), '' if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[0]
    except OSError:
        return ""


def listening_addresses(pids: list[int]) -> dict[int, list[tuple[str, int]]]:
    """Per pid, the (address, port) of each TCP socket it holds in the LISTEN state."""
    sockets = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with open(table, encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] != LISTEN:
                    continue
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # per 32-bit word
                sockets[fields[9]] = (socket.inet_ntop(family, raw), int(port, 16))
    owned = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone meanwhile
            continue
        links = []
        for fd in fds:
            try:
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:  # closed meanwhile
                pass
        inodes = [link[len("socket:[") : -1] for link in links if link.startswith("socket:[")]
        owned[pid] = [sockets[i] for i in inodes if i in sockets]
    return owned


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
