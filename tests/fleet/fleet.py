"""A fleet on loopback: several instances of each BFF behind HAProxy, sharing one Redis.

What a platform team runs, minus the containers: the demo upstreams, three web-bff and two
mobile-bff instances (each on its own loopback address, 127.0.0.2 to 127.0.0.6, one port, as
pods have their own IPs), one Redis or Redis Cluster, and HAProxy from Debian's packages with
``deploy/haproxy/haproxy.cfg`` itself. HAProxy finds the instances by DNS as it does in compose
(:mod:`tests.fleet.dns` plays Docker's embedded DNS) and health-checks ``/readyz``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fleet.dns import LoopbackDNS
from tests.processes import (
    free_port,
    probe_get,
    run_service,
    spawn,
    stop_process,
    wait_for,
    wait_ready,
)

REPO = Path(__file__).resolve().parents[2]
HAPROXY_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
ADMIN_TOKEN = "fleet-admin-token-0123456789-abcdefgh"
PRODUCT_IDS = [f"p-{1001 + n}" for n in range(12)]
_UPSTREAM_VARIABLES = (
    "PRODUCT_SERVICE_URL",
    "INVENTORY_SERVICE_URL",
    "PRICING_SERVICE_URL",
    "REVIEWS_SERVICE_URL",
    "CATEGORY_SERVICE_URL",
    "RECOMMENDATIONS_SERVICE_URL",
    "CART_SERVICE_URL",
    "ORDERS_SERVICE_URL",
)


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy",) if os.access(path, os.X_OK)), None
    )


def _port_free_on(hosts: Sequence[str]) -> int:
    """A port free on every one of these loopback addresses."""
    for _ in range(50):
        port = free_port()
        try:
            for host in hosts:
                with socket.socket() as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {hosts}")


@dataclass
class Instance:
    """One BFF instance: ``web-bff --host 127.0.0.N --port P``, restartable."""

    name: str
    module: str
    host: str
    port: int
    env: dict[str, str]
    log_path: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ops_url(self) -> str:
        """The operations listener (BFF_OPS_PORT): /metrics and /admin/*, as deployed."""
        return f"http://{self.host}:{self.env['BFF_OPS_PORT']}"

    def start(self, timeout: float = 20.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the process without waiting for it (:meth:`wait_ready` does)."""
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
        self.process = spawn(
            self.module,
            [],
            host=self.host,
            port=self.port,
            env=self.env,
            log_path=self.log_path,
            # Its own process group: kill -9 takes granian's workers too, as a container's
            # cgroup does.
            new_session=True,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        assert self.process is not None
        wait_ready(self.process, self.url + "/readyz", self.name, self.log, timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, as Kubernetes and compose stop a container; wait for the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """kill -9 of the whole instance, workers included."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def log(self) -> str:
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")

    def readyz(self) -> dict[str, Any]:
        body: dict[str, Any] = probe_get(self.url + "/readyz", timeout=2.0).json()
        return body


@dataclass
class Balancer:
    """HAProxy with deploy/haproxy/haproxy.cfg, and its stats page read as CSV."""

    process: subprocess.Popen[bytes]
    web_url: str
    mobile_url: str
    stats_url: str
    log_path: str

    def servers(self, backend: str) -> dict[str, tuple[str, str]]:
        """``slot -> (address, status)`` of a backend, as HAProxy sees it now."""
        text = probe_get(self.stats_url + "/stats;csv", timeout=2.0).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: (row.get("addr") or "", row["status"])
            for row in rows
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def sessions(self, backend: str) -> dict[str, int]:
        """``address -> requests sent to it`` (the ``stot`` column) of a backend."""
        text = probe_get(self.stats_url + "/stats;csv", timeout=2.0).text.lstrip("# ")
        return {
            row.get("addr") or row["svname"]: int(row["stot"] or 0)
            for row in csv.DictReader(io.StringIO(text))
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def retried(self, backend: str) -> tuple[int, int]:
        """``(retries, redispatches)`` HAProxy made on a backend since it started."""
        text = probe_get(self.stats_url + "/stats;csv", timeout=2.0).text.lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            if row["pxname"] == backend and row["svname"] == "BACKEND":
                return int(row["wretr"] or 0), int(row["wredis"] or 0)
        raise LookupError(backend)

    def status_of(self, backend: str, address: str) -> str | None:
        for slot_address, status in self.servers(backend).values():
            if slot_address == address:
                return status
        return None

    def log(self) -> str:
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")


@dataclass
class Fleet:
    upstreams_url: str
    redis_url: str
    web: list[Instance]
    mobile: list[Instance]
    balancer: Balancer
    dns: LoopbackDNS
    http: httpx.Client

    @property
    def instances(self) -> list[Instance]:
        return [*self.web, *self.mobile]

    def backend_of(self, instance: Instance) -> str:
        return "web-bff" if instance in self.web else "mobile-bff"

    def wait_in_rotation(self, instance: Instance, timeout: float = 15.0) -> None:
        backend, address = self.backend_of(instance), f"{instance.host}:{instance.port}"
        if not wait_for(lambda: self.balancer.status_of(backend, address) == "UP", timeout, 0.1):
            raise AssertionError(
                f"{instance.name} not UP in {backend} after {timeout} s: "
                f"{self.balancer.servers(backend)}"
            )

    # The demo upstreams' admin API.
    def inject(self, service: str, **fault: Any) -> None:
        response = self.http.put(f"{self.upstreams_url}/admin/faults/{service}", json=fault)
        assert response.status_code == 200, response.text

    def clear_faults(self) -> None:
        self.http.delete(f"{self.upstreams_url}/admin/faults").raise_for_status()

    def reset_request_log(self) -> None:
        self.http.delete(f"{self.upstreams_url}/admin/requests").raise_for_status()

    def request_log(self) -> dict[str, Any]:
        log: dict[str, Any] = self.http.get(f"{self.upstreams_url}/admin/requests").json()
        return log


@contextmanager
def run_fleet(redis_url: str, *, web: int = 3, mobile: int = 2) -> Iterator[Fleet]:
    haproxy = haproxy_binary()
    if haproxy is None:
        raise RuntimeError("haproxy not found: install Debian's haproxy (./run tests does)")
    deployment = f"fleet-{uuid.uuid4().hex[:8]}"
    logs = tempfile.mkdtemp(prefix=f"{deployment}-")
    with ExitStack() as stack, httpx.Client(timeout=10.0) as http:
        stack.callback(shutil.rmtree, logs, ignore_errors=True)
        upstreams = _start_upstreams(stack, logs)
        hosts = [f"127.0.0.{2 + n}" for n in range(web + mobile)]
        port = _port_free_on(hosts)
        ops_port = _port_free_on(hosts)
        while ops_port == port:  # nothing listens on either yet
            ops_port = _port_free_on(hosts)
        common = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "REDIS_URL"))},
            **dict.fromkeys(_UPSTREAM_VARIABLES, upstreams),
            "REDIS_URL": redis_url,
            "BFF_ADMIN_TOKEN": ADMIN_TOKEN,
            # As compose and the manifests run them: /metrics and /admin/* on a port the
            # balancer never forwards.
            "BFF_OPS_PORT": str(ops_port),
            # Near copies that outlive every test: only the invalidation broadcast can clear
            # them, so a test of it fails if the broadcast does not reach an instance.
            "BFF_CACHE_NEAR_MS": "60000",
            "PYTHONUNBUFFERED": "1",
        }

        def instance(kind: str, index: int, host: str) -> Instance:
            return Instance(
                name=f"{kind}-bff-{index}",
                module=f"{kind}_bff",
                host=host,
                port=port,
                env={**common, "BFF_CACHE_NAMESPACE": f"{deployment}-{kind}"},
                log_path=os.path.join(logs, f"{kind}-bff-{index}.log"),
            )

        web_instances = [instance("web", n + 1, hosts[n]) for n in range(web)]
        mobile_instances = [instance("mobile", n + 1, hosts[web + n]) for n in range(mobile)]
        # All at once (they import in parallel), then each must be ready.
        for each in [*web_instances, *mobile_instances]:
            stack.callback(each.stop)
            each.spawn()
        for each in [*web_instances, *mobile_instances]:
            each.wait_ready(timeout=30.0)
        dns = LoopbackDNS(
            {
                "web-bff.fleet.test": hosts[:web],
                "mobile-bff.fleet.test": hosts[web:],
            }
        )
        stack.callback(dns.close)
        balancer = _start_balancer(stack, haproxy, logs, dns, port, web, mobile)
        fleet = Fleet(upstreams, redis_url, web_instances, mobile_instances, balancer, dns, http)
        for each in fleet.instances:
            fleet.wait_in_rotation(each)
        yield fleet


def _start_upstreams(stack: ExitStack, logs: str) -> str:
    service = stack.enter_context(
        run_service(
            "demo_upstreams",
            ["--request-log-size", "20000"],
            log_path=os.path.join(logs, "upstreams.log"),
        )
    )
    return service.url


def _start_balancer(
    stack: ExitStack, haproxy: str, logs: str, dns: LoopbackDNS, port: int, web: int, mobile: int
) -> Balancer:
    web_port, mobile_port, stats_port = free_port(), free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BFF_LB_WEB_BIND": f"127.0.0.1:{web_port}",
        "BFF_LB_MOBILE_BIND": f"127.0.0.1:{mobile_port}",
        "BFF_LB_STATS_BIND": f"127.0.0.1:{stats_port}",
        "BFF_LB_DNS": dns.address,
        "WEB_BFF_ADDRESS": f"web-bff.fleet.test:{port}",
        "WEB_BFF_SLOTS": str(web),
        "MOBILE_BFF_ADDRESS": f"mobile-bff.fleet.test:{port}",
        "MOBILE_BFF_SLOTS": str(mobile),
    }
    log_path = os.path.join(logs, "haproxy.log")
    log = stack.enter_context(open(log_path, "wb"))  # noqa: SIM115
    process = subprocess.Popen(
        # -W: master-worker, as in the official image; -db: stay in the foreground.
        [haproxy, "-W", "-db", "-f", str(HAPROXY_CONFIG)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    stack.callback(stop_process, process)
    balancer = Balancer(
        process,
        f"http://127.0.0.1:{web_port}",
        f"http://127.0.0.1:{mobile_port}",
        f"http://127.0.0.1:{stats_port}",
        log_path,
    )

    wait_ready(process, balancer.stats_url + "/healthz", "haproxy", balancer.log, 10)
    return balancer


@dataclass
class Outcome:
    """One request of the load: when it ended, through which frontend, and how."""

    started: float
    ended: float
    frontend: str
    product_id: str
    status: int | None
    problem: str | None


@dataclass
class Load:
    """Requests through the balancer from a few threads until stopped, bounded in count and
    time; every answer is checked, and every outcome kept."""

    fleet: Fleet
    threads: int = 6
    max_requests: int = 20_000
    max_seconds: float = 120.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._deadline = time.monotonic() + self.max_seconds
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
        return self.outcomes

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.problem is not None]

    def summary(self) -> Counter[str]:
        with self._lock:
            return Counter(o.problem or "ok" for o in self.outcomes)

    def _run(self, worker: int) -> None:
        frontends = [
            ("web", self.fleet.balancer.web_url),
            ("mobile", self.fleet.balancer.mobile_url),
        ]
        with httpx.Client(timeout=10.0) as client:
            n = worker
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                if self.count() >= self.max_requests:
                    return
                frontend, base = frontends[n % 2]
                product_id = PRODUCT_IDS[n % len(PRODUCT_IDS)]
                n += 1
                status: int | None = None
                started = time.monotonic()
                try:
                    response = client.get(
                        f"{base}/api/aggregated/product", params={"id": product_id}
                    )
                    status = response.status_code
                    problem = check_answer(frontend, product_id, response)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.outcomes.append(
                        Outcome(started, time.monotonic(), frontend, product_id, status, problem)
                    )


def check_answer(frontend: str, product_id: str, response: httpx.Response) -> str | None:
    """What is wrong with this answer, or None: 200, the product asked for, and every part
    either there or named in ``errors``."""
    if response.status_code != 200:
        return f"status {response.status_code}: {response.text[:200]}"
    body = response.json()
    if body.get("product", {}).get("id") != product_id:
        return f"wrong product: {str(body)[:200]}"
    failed = {error["source"] for error in body.get("errors", [])}
    for part in ("inventory", "pricing", "reviews"):
        if body.get(part) is None and part not in failed:
            return f"{frontend}: {part} missing and not reported: {str(body)[:300]}"
    return None
