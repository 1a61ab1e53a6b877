"""``speechdecode info``: versions and available backends."""

from __future__ import annotations

from speechdecode.cli import emit


def register(commands) -> None:
    commands.add("info", "show versions and which backends (native, triton, cuda) are available", run)


def run(args) -> None:
    from speechdecode import _backend

    info = _backend.info()
    native = info["native"]
    lines = [
        f"speechdecode {info['speechdecode']} (Python {info['python']}, {info['platform']})",
        f"native:  {'yes, ' + native['compiler'] if native['available'] else 'no (' + native['error'] + ')'}",
        f"triton:  {info['triton']['version'] or 'not installed'}"
        + (" (interpreter)" if info["triton"]["interpret"] else ""),
        f"cuda:    {info['cuda']['device'] or 'not available'}",
        "backends for CPU inputs: " + ", ".join(_backend.available("cpu")),
        "versions: " + ", ".join(f"{k} {v or '-'}" for k, v in info["versions"].items()),
    ]
    emit(args, info, "\n".join(lines))
