"""The Ray cluster a run's backend actors live on: a local instance started and stopped by the run, or an
existing cluster joined with ``--ray-address``; and what ``run.json`` records of it.

A local instance keeps every socket on loopback. Ray 2.x replaces a node address of ``127.0.0.1`` by the
machine's own address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set before Ray is imported (it then
binds its GCS, raylet, object manager and worker ports to 127.0.0.1 only); :func:`import_ray` sets it for a
local instance, and for a cluster joined at a loopback address. The dashboard is never started here.

Token authentication: ``ray start`` (Ray 2.5x on) enables it for the cluster it starts, with a token it keeps
in ``~/.ray/auth_token``, but ``ray.init`` joining an explicit address does not send it unless
``RAY_AUTH_MODE=token`` is set (it retried for 20 s, logging ``InvalidAuthToken``, then failed). So a run that
joins ``--ray-address`` with a token at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or that file) and no
``RAY_AUTH_MODE`` of its own sends the token; a cluster without authentication ignores it.

Ray is an optional dependency (``pip install -e '.[ray]'``): this module imports it only when a run asks for
it, and :class:`RayUnavailableError` says how to install it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
from pathlib import Path
from types import ModuleType

from common.errors import BadInputError
from readback.cluster import ClusterInfo, NodeInfo

log = logging.getLogger(__name__)

#: what to install when Ray is missing
INSTALL_HINT = "pip install -e '.[ray]'   (or: pip install 'ray>=2.40')"
#: Ray's switch for a single-machine cluster: with "0", a node address of 127.0.0.1 stays 127.0.0.1
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: the namespace of this project's actors in a shared cluster
NAMESPACE = "seq2cnn-mlperf"
#: Ray's switch for token authentication ("token" or "disabled"), and where it finds a token
AUTH_MODE_SWITCH = "RAY_AUTH_MODE"
AUTH_TOKEN_VARIABLES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
#: how long the head of a cluster given by --ray-address may take to accept a connection (s)
CONNECT_TIMEOUT_S = 10.0


class RayUnavailableError(BadInputError):
    """``--ray`` was asked for, but Ray cannot be imported."""


class ClusterError(BadInputError):
    """The Ray cluster cannot be started or joined, or cannot hold the actors asked for."""


def is_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` (or ``HOST``) names this machine's loopback interface."""
    host = address
    if address.startswith("["):  # [IPv6]:PORT
        host = address[1:address.find("]")]
    elif address.count(":") == 1:  # HOST:PORT (an IPv6 address alone has several colons)
        host = address.split(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def import_ray(address: str | None) -> ModuleType:
    """Ray, imported for a local instance (``address`` None) or a cluster at ``address``; a local or loopback
    cluster binds to 127.0.0.1 only (see the module docstring). :class:`RayUnavailableError` without Ray."""
    if (address is None or is_loopback(address)) and LOOPBACK_SWITCH not in os.environ:
        os.environ[LOOPBACK_SWITCH] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report: there is no internet to send it to
    if address not in (None, "auto") and AUTH_MODE_SWITCH not in os.environ and _token_at_hand():
        os.environ[AUTH_MODE_SWITCH] = "token"  # as ray.init does for a cluster it finds itself
        log.info("joining %s with Ray's authentication token (%s=token; %s=disabled joins without it)", address,
                 AUTH_MODE_SWITCH, AUTH_MODE_SWITCH)
    # A call on an actor after the run disconnected (a batch still on its way after a failure) must fail, not
    # start a new local Ray instance of its own (read when Ray is imported)
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
    except ImportError as error:
        raise RayUnavailableError(f"--ray runs the backend on Ray actors, but Ray is not installed ({error}): "
                                  f"install it with  {INSTALL_HINT}") from None
    return ray


def _token_at_hand() -> bool:
    """Whether Ray would find an authentication token: in its variables, or in ``~/.ray/auth_token``."""
    return any(os.environ.get(name) for name in AUTH_TOKEN_VARIABLES) or DEFAULT_TOKEN_FILE.expanduser().is_file()


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """:class:`ClusterError` unless something accepts a TCP connection at ``HOST:PORT`` within ``timeout_s``:
    Ray itself would retry for minutes before giving up on a cluster that is not there."""
    host, _, port = address.strip().removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r} is not auto or HOST:PORT (the head's GCS port, 6379 by default)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise ClusterError(f"no Ray cluster answers at {address} ({error.strerror or error}): start its head there "
                           "('ray start --head --port PORT'; 'ray status' on that machine tells), or run without "
                           "--ray-address for a local instance") from None


class RayCluster:
    """A connection to Ray for one run: :meth:`start` a local instance or join ``address``, :meth:`stop`.

    ``cpus`` is the local instance's logical CPU count (default: the machine's).
    """

    def __init__(self, address: str | None = None, cpus: int | None = None):
        self.address = address
        self.cpus = cpus
        self.ray: ModuleType | None = None
        self.started_locally = False

    def start(self) -> "RayCluster":
        if self.address is not None and self.address != "auto":
            check_reachable(self.address)
        ray = self.ray = import_ray(self.address)
        started = time.perf_counter()
        options = dict(namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=True,
                       configure_logging=False)
        try:
            if self.address is None:
                ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=self.cpus or os.cpu_count(),
                         **options)
                self.started_locally = True
            else:
                ray.init(address=self.address, **options)
        except Exception as error:  # noqa: BLE001 - Ray raises many kinds; all mean the same to the user
            where = f"join the Ray cluster at {self.address}" if self.address else "start a local Ray instance"
            hint = (" Is a cluster running there ('ray start --head' on that machine; 'ray status' tells)? For a "
                    "cluster on this machine's loopback, start it with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 set. A "
                    "cluster with token authentication needs its token here: RAY_AUTH_TOKEN, or the head's "
                    "~/.ray/auth_token copied to this machine."
                    if self.address else "")
            raise ClusterError(f"cannot {where}: {type(error).__name__}: {str(error).rstrip('.')}.{hint}") from error
        log.info("Ray %s %s in %.1f s: %s", ray.__version__, "started locally" if self.started_locally else "joined",
                 time.perf_counter() - started, ", ".join(f"{node.address} ({node.cpus:g} CPUs, {node.gpus:g} GPUs)"
                                                          for node in self.nodes()))
        return self

    def nodes(self) -> list[NodeInfo]:
        """The cluster's alive nodes."""
        assert self.ray is not None
        return [NodeInfo(node["NodeID"], node["NodeManagerAddress"], float(node["Resources"].get("CPU", 0)),
                         float(node["Resources"].get("GPU", 0)), int(node["Resources"].get("memory", 0)))
                for node in self.ray.nodes() if node.get("Alive")]

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (``CPU``, ``GPU``, ...)."""
        assert self.ray is not None
        return dict(self.ray.cluster_resources())

    def available(self) -> dict[str, float]:
        """The cluster's resources not taken by other actors and tasks now."""
        assert self.ray is not None
        return dict(self.ray.available_resources())

    def info(self) -> ClusterInfo:
        assert self.ray is not None
        return ClusterInfo("local" if self.started_locally else str(self.address), self.ray.__version__, self.nodes())

    def stop(self) -> None:
        """Disconnect; a local instance's processes end with it."""
        if self.ray is not None and self.ray.is_initialized():
            self.ray.shutdown()
