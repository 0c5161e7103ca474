"""deploy/'s alerts and dashboard against the metrics the BFFs really export, checked with
Debian's promtool, and a real Prometheus scraping a running BFF."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from litestar.testing import TestClient

from tests.deploy.dockerfile import REPO
from tests.deploy.test_manifests import kustomize
from tests.processes import RunningService, free_port, run_service, wait_for
from tests.services.conftest import bff_env

pytestmark = pytest.mark.deploy

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "bff-dashboard.json"
ROUTE = "/api/aggregated/product"
SERVICES = ("PRODUCT", "INVENTORY", "PRICING", "REVIEWS")


def binary(name: str) -> str:
    found = shutil.which(name)
    assert found is not None, f"{name} not installed (./run tests installs Debian's prometheus)"
    return found


def exported_names() -> set[str]:
    """Every sample name a BFF's /metrics has, straight after start-up (series are declared
    at zero), for both BFFs."""
    names: set[str] = set()
    for module in ("web_bff.app", "mobile_bff.app"):
        app = __import__(module, fromlist=["create_app"]).create_app(
            {f"{s}_SERVICE_URL": "http://127.0.0.1:9" for s in SERVICES}
        )
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200  # a request: its series exist
            text = client.get("/metrics").text
        names |= {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    return names


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((PROMETHEUS_DIR / "alerts.yaml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    found += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return found + [rule["expr"] for rule in rules()]


def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    promtool = binary("promtool")
    for command in (
        ["check", "rules", "alerts.yaml"],
        ["test", "rules", "alerts.test.yaml"],
        ["check", "config", "prometheus.yml"],
    ):
        done = subprocess.run(
            [promtool, *command], cwd=PROMETHEUS_DIR, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_cover_what_an_operator_is_woken_for() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts == {
        "BffPartErrorRateHigh",
        "BffBreakerOpen",
        "BffLatencyOverDeadline",
        "BffRedisDown",
    }


def test_dashboard_and_alerts_query_only_metrics_the_bffs_export() -> None:
    exported = exported_names()
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    referenced: set[str] = set()
    for query in queries():
        referenced |= set(re.findall(r"\b(bff(?:_[a-z0-9]+)+)\b", query))
        for name in re.findall(r"\b(bff:[a-z0-9_:]+)\b", query):
            assert name in recorded, name
    assert referenced, "no metric referenced at all"
    assert referenced <= exported, referenced - exported
    # and the other way round: every family the BFFs export is on the dashboard
    families = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in exported}
    shown = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in referenced}
    assert families <= shown, families - shown


def test_the_pods_are_annotated_for_a_scraper_on_the_operations_port() -> None:
    for bff in ("web-bff", "mobile-bff"):
        (deployment,) = [m for m in kustomize(bff) if m["kind"] == "Deployment"]
        template = deployment["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        (container,) = template["spec"]["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        (ops,) = [e["value"] for e in container["env"] if e["name"] == "BFF_OPS_PORT"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == ports["ops"] == int(ops)
        assert ports["ops"] != ports["http"]
        assert annotations["prometheus.io/path"] == "/metrics"


def test_prometheus_scrapes_composes_bffs_on_their_operations_port() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for bff in ("web-bff", "mobile-bff"):
        (discovery,) = jobs[bff]["dns_sd_configs"]
        assert discovery["names"] == [bff]
        assert discovery["port"] == int(compose[bff]["environment"]["BFF_OPS_PORT"])
        assert jobs[bff].get("metrics_path", "/metrics") == "/metrics"


@pytest.fixture
def bff_and_upstreams() -> Iterator[tuple[RunningService, RunningService, int]]:
    """The upstreams, and a web BFF with its operations port, as deployed."""
    ops_port = free_port()
    with (
        run_service("demo_upstreams") as upstreams,
        run_service(
            # Predictable counts: no cache, no retries, no breakers.
            "web_bff",
            env=bff_env(upstreams.url, BFF_RETRY_BUDGET_PERCENT="0", BFF_OPS_PORT=str(ops_port)),
        ) as web,
    ):
        yield upstreams, web, ops_port


def test_a_real_prometheus_scrapes_a_bff_and_the_error_rate_query_predicts_the_faults(
    bff_and_upstreams: tuple[RunningService, RunningService, int], tmp_path: Path
) -> None:
    upstreams, web, ops_port = bff_and_upstreams
    port = free_port()
    # The operations port, as the manifests' annotations and compose's scrape configuration.
    target = f"127.0.0.1:{ops_port}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(PROMETHEUS_DIR / "alerts.yaml")],
        "scrape_configs": [{"job_name": "web-bff", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1"

    def query(promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{api}/query", params={"query": promql}, timeout=5).json()
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def scrapes() -> int:
        try:
            found = query('count_over_time(up{job="web-bff"}[1h])')
        except (httpx.HTTPError, ValueError):
            return 0  # not listening yet, or "Service Unavailable" while it starts
        return int(found[0]["value"][1]) if found else 0

    try:
        # Scraped at least twice before any request: every series starts at zero.
        assert wait_for(lambda: scrapes() >= 2, timeout=30, step=0.2), (
            tmp_path / "prometheus.log"
        ).read_text()
        with httpx.Client(timeout=10) as client:
            client.put(f"{upstreams.url}/admin/faults/reviews", json={"status": 503})
            for n in range(100):
                client.get(web.url + ROUTE, params={"id": f"p-{1001 + n % 12}"})
            client.delete(f"{upstreams.url}/admin/faults")
            client.put(f"{upstreams.url}/admin/faults/pricing", json={"status": 503, "rate": 1.0})
            for n in range(100):
                client.get(web.url + ROUTE, params={"id": f"p-{1001 + n % 12}"})
        done = scrapes()
        assert wait_for(lambda: scrapes() >= done + 2, timeout=30, step=0.2)
        (ratio,) = [
            rule["expr"] for rule in rules() if rule.get("record") == "bff:part_error_ratio:rate5m"
        ]
        # The product page's default parts (its other parts, and the other aggregates, were
        # never asked for: 0 / 0).
        by_source = {
            r["metric"]["source"]: float(r["value"][1])
            for r in query(ratio)
            if r["metric"]["aggregate"] == "web_product_page"
            and r["metric"]["source"] in ("product", "inventory", "pricing", "reviews")
        }
        # reviews failed in the first 100 of 200, pricing in the last 100: both half.
        assert by_source == pytest.approx(
            {"product": 0.0, "inventory": 0.0, "pricing": 0.5, "reviews": 0.5}, abs=1e-9
        )
        # The recording rule, evaluated by Prometheus itself, says the same.
        assert wait_for(
            lambda: (
                {
                    r["metric"]["source"]: round(float(r["value"][1]), 6)
                    for r in query("bff:part_error_ratio:rate5m")
                }.get("reviews")
                == 0.5
            ),
            timeout=15,
            step=0.2,
        )
        requests = query(f'sum(bff_http_request_duration_seconds_count{{route="{ROUTE}"}})')
        assert float(requests[0]["value"][1]) == 200
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=20)
        log.close()
