"""Ray, the distributed engine of the ``ray`` extra: importing it, joining or starting a cluster,
and turning a failed task back into the error it raised.

A cluster this module starts (no ``address``) runs on this machine and listens on the loopback
interface only, with Ray's dashboard and its job API (which runs any code it is sent) off unless
``dashboard=True``. With an ``address`` it joins that cluster and no other: the address is tried
first, so one that does not answer fails within ``timeout`` seconds with the address named.
"""

from __future__ import annotations

import importlib
import os
import socket

from speechdecode.errors import BackendUnavailableError, InvalidArgumentError

__all__ = ["ClusterUnavailableError", "connect", "require_ray", "unwrap"]

EXTRA = "pip install 'speechdecode[ray]'"
LOOPBACK = "127.0.0.1"  # the only address a local cluster listens on


class ClusterUnavailableError(BackendUnavailableError, TimeoutError):
    """A Ray cluster address did not answer in time."""


def require_ray():
    """The ``ray`` module, or an error that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError(
            f"Ray is not installed: the distributed build and decoding need it ({EXTRA})"
        ) from None
    return ray


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
    spill_dir: str | None = None,
    dashboard: bool = False,
    timeout: float = 10.0,
):
    """Join the Ray cluster at ``address``, or start one on this machine; returns ``ray``.

    Does nothing when this process is already connected (e.g. ``ray.init`` called by the user).

    Args:
        address: ``host:port`` of a cluster's head (``ray start --head`` prints it), ``ray://..``
            for Ray Client, or ``"auto"`` (the cluster this machine belongs to); None starts a
            local cluster.
        num_cpus: worker slots of a local cluster (default: every core).
        object_store_memory: bytes of a local cluster's object store (default: Ray's, 30% of memory).
        spill_dir: where a local cluster's object store spills (default: Ray's temp directory).
        dashboard: start a local cluster's dashboard and job API (off: they listen on a port and
            the job API runs whatever it is sent).
        timeout: seconds to wait for ``address`` to accept a connection.

    Raises:
        BackendUnavailableError: Ray is not installed (names the extra).
        ClusterUnavailableError: ``address`` did not answer within ``timeout``.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address is None:
        options = {}
        if spill_dir is not None:
            import json

            spill = {"type": "filesystem", "params": {"directory_path": os.fspath(spill_dir)}}
            options["_system_config"] = {"object_spilling_config": json.dumps(spill)}
        # Ray's services listen on the node's IP address (0.0.0.0 unless it is loopback), and
        # ray.init swaps a loopback _node_ip_address for the machine's routable address unless
        # Ray runs as a single-machine install (ray._private.services.resolve_ip_for_localhost
        # -> get_node_ip_address). That mode is Ray's RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read
        # once when ray is imported into ray_constants.ENABLE_RAY_CLUSTER: set it while the
        # cluster starts, so the GCS, raylet, workers and agents all listen on 127.0.0.1.
        constants = importlib.import_module("ray._private.ray_constants")
        cluster_mode = constants.ENABLE_RAY_CLUSTER
        constants.ENABLE_RAY_CLUSTER = False
        try:
            ray.init(
                num_cpus=num_cpus,
                object_store_memory=object_store_memory,
                include_dashboard=dashboard,
                _node_ip_address=LOOPBACK,
                configure_logging=False,
                log_to_driver=False,
                **options,
            )
        finally:
            constants.ENABLE_RAY_CLUSTER = cluster_mode
        return ray
    if not isinstance(address, str) or not address:
        raise InvalidArgumentError("address", "host:port of a Ray cluster, ray://host:port, or 'auto'", repr(address))
    if address != "auto":
        _wait_for(address, timeout)
    ray.init(address=address, configure_logging=False, log_to_driver=False)
    return ray


def _wait_for(address: str, timeout: float) -> None:
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidArgumentError("address", "host:port of a Ray cluster (or ray://host:port, 'auto')", repr(address))
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterUnavailableError(
            f"Ray cluster at {address} did not answer within the {timeout:g} s timeout ({reason})"
        ) from None


def unwrap(error: BaseException) -> BaseException:
    """The exception a Ray task raised, without Ray's wrapper (which repeats the traceback)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
