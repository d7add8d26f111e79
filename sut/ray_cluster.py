"""The Ray cluster a run's backend actors live on: a local instance started and stopped by the run, or an
existing cluster joined with ``--ray-address``; and what ``run.json`` records of it.

A local instance is always one of the run's own: ``ray.init(address="local")``. Without it Ray's ``ray.init()``
joins the cluster named in ``RAY_ADDRESS`` or in the file ``ray_current_cluster`` of its temp folder
(``/tmp/ray`` by default; ``$RAY_TMPDIR/ray`` or ``$TMPDIR/ray`` where set), which ``ray start`` writes and only
``ray stop`` deletes: a head stopped any other way (a signal, a reboot of the head's machine) leaves it naming a
dead cluster, and every local run then failed with Ray's "When connecting to an existing cluster, num_cpus and
num_gpus must not be provided"; beside a live ``ray start`` cluster the run joined it. ``address="local"`` reads
neither; a ``RAY_ADDRESS`` that a local run does not use is logged.

``--ray-address auto`` asks for that lookup: :func:`resolve_address` does it here (``RAY_ADDRESS``, then the
file), so that the cluster found is joined as if named (loopback, token) and one that no longer answers is a
prompt error that names the file: Ray itself retried a dead head for minutes, and turned a recorded
``127.0.0.1`` into the machine's own address, where a cluster on loopback does not listen. Where neither names
one, Ray looks for a ``gcs_server`` process of this machine itself.

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
import sys
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
#: Ray's variable naming a cluster for ray.init() to join; a local instance does not read it
ADDRESS_VARIABLE = "RAY_ADDRESS"
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


def ray_address_file() -> Path:
    """The file in which ``ray start`` records its cluster for a later ``ray.init()`` without an address, as Ray's
    ``get_ray_address_file(None)`` finds it: ``ray_current_cluster`` in ``$RAY_TMPDIR/ray``, else ``$TMPDIR/ray``
    (Linux), else ``/tmp/ray``."""
    root = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None)
    return Path(root or "/tmp") / "ray" / "ray_current_cluster"


def resolve_address(address: str | None) -> tuple[str | None, str | None]:
    """The cluster to join for ``--ray-address`` ``address``, and where it was named (None: on the command line).
    ``auto`` becomes what Ray's lookup finds: ``RAY_ADDRESS``, else the address in :func:`ray_address_file`;
    it stays ``auto`` where neither names one (Ray then looks for a ``gcs_server`` process of this machine)."""
    if address != "auto":
        return address, None
    named = os.environ.get(ADDRESS_VARIABLE, "").strip()
    if named and named not in ("auto", "local"):
        return named, ADDRESS_VARIABLE
    address_file = ray_address_file()
    try:
        recorded = address_file.read_text().strip()
    except OSError:  # no such file: no 'ray start' since the last 'ray stop'
        recorded = ""
    return (recorded, str(address_file)) if recorded else ("auto", None)


def import_ray(address: str | None) -> ModuleType:
    """Ray, imported for a local instance (``address`` None) or a cluster at ``address`` (``auto``: the one
    :func:`resolve_address` finds); a local or loopback cluster binds to 127.0.0.1 only (see the module
    docstring). :class:`RayUnavailableError` without Ray."""
    address, _ = resolve_address(address)
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


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S, named_in: str | None = None) -> None:
    """:class:`ClusterError` unless something accepts a TCP connection at ``HOST:PORT`` within ``timeout_s``
    (seconds): Ray itself would retry for minutes before giving up on a cluster that is not there. ``named_in``:
    where ``--ray-address auto`` found the address (:func:`resolve_address`), for the message."""
    host, _, port = address.strip().removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r} is not auto or HOST:PORT (the head's GCS port, 6379 by default)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        reason = error.strerror or error
        if named_in == ADDRESS_VARIABLE:
            raise ClusterError(f"--ray-address auto: {ADDRESS_VARIABLE} names {address}, where no Ray cluster "
                               f"answers ({reason}): set it to a running cluster's head (HOST:PORT), unset it, or "
                               "run without --ray-address for a local instance") from None
        if named_in is not None:
            raise ClusterError(f"--ray-address auto: {named_in} names {address}, where no Ray cluster answers "
                               f"({reason}); 'ray start' writes that file and only 'ray stop' deletes it, so it is "
                               "left from a cluster stopped otherwise: delete it, give --ray-address HOST:PORT of a "
                               "running head, or run without --ray-address for a local instance") from None
        raise ClusterError(f"no Ray cluster answers at {address} ({reason}): start its head there "
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
        #: the cluster joined: ``address``, or for ``auto`` the one found (:func:`resolve_address`)
        self.joined: str | None = None

    def start(self) -> "RayCluster":
        self.joined, named_in = resolve_address(self.address)
        if named_in is not None:
            log.info("--ray-address auto: joining the Ray cluster at %s, named in %s", self.joined, named_in)
        if self.joined is not None and self.joined != "auto":
            check_reachable(self.joined, named_in=named_in)
        ray = self.ray = import_ray(self.joined)
        started = time.perf_counter()
        options = dict(namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=True,
                       configure_logging=False)
        try:
            if self.address is None:
                self._say_local()
                # "local": a new instance, whatever RAY_ADDRESS or Ray's ray_current_cluster file name
                ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False,
                         num_cpus=self.cpus or os.cpu_count(), **options)
                self.started_locally = True
            else:
                ray.init(address=self.joined, **options)
        except Exception as error:  # noqa: BLE001 - Ray raises many kinds; all mean the same to the user
            found = f" (--ray-address auto: named in {named_in})" if named_in else ""
            where = f"join the Ray cluster at {self.joined}{found}" if self.address else "start a local Ray instance"
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

    @staticmethod
    def _say_local() -> None:
        """Log that the run starts a Ray instance of its own, and that a cluster named in ``RAY_ADDRESS`` is not
        joined (Ray itself would join it, or the last ``ray start`` cluster of this machine)."""
        log.info("--ray without --ray-address: starting a local Ray instance of the run's own on 127.0.0.1; a Ray "
                 "cluster already running on this machine is not joined (--ray-address auto joins it)")
        named = os.environ.get(ADDRESS_VARIABLE, "").strip()
        if named and named != "local":
            log.warning("%s=%s is not used: --ray without --ray-address starts a local Ray instance; to run on "
                        "that cluster give --ray-address %s (or --ray-address auto), or unset %s to silence this",
                        ADDRESS_VARIABLE, named, named, ADDRESS_VARIABLE)

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
        return ClusterInfo("local" if self.started_locally else str(self.joined), self.ray.__version__, self.nodes())

    def stop(self) -> None:
        """Disconnect; a local instance's processes end with it."""
        if self.ray is not None and self.ray.is_initialized():
            self.ray.shutdown()
