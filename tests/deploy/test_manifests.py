"""deploy/: the Kubernetes manifests (built with kustomize, validated against the Kubernetes
schemas), the compose file (against the compose specification's schema) and HAProxy's
configuration, checked offline, plus the policies a platform team relies on."""

from __future__ import annotations

import copy
import ipaddress
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from bff_core import GatewaySettings
from bff_core._guards import parse_networks
from bff_core._redis import parse_redis_url
from bff_core.litestar._serve import _STOP_BOUND_S

from tests.deploy.dockerfile import REPO, parse
from tests.fleet.fleet import HAPROXY_CONFIG, haproxy_binary

# One worker: the manifests are built (kustomize) once.
pytestmark = [pytest.mark.deploy, pytest.mark.xdist_group("manifests")]

DEPLOY = REPO / "deploy"
KUSTOMIZATIONS = ("web-bff", "mobile-bff", "redis-external", "redis-demo-cluster")
BFFS = ("web-bff", "mobile-bff")
KUBERNETES_VERSION = "1.37"
BIN = Path(sys.executable).parent

Manifest = dict[str, Any]


def kustomize(folder: str) -> list[Manifest]:
    built = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(DEPLOY / "kubernetes" / folder)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.fixture(scope="module")
def built() -> dict[str, list[Manifest]]:
    return {folder: kustomize(folder) for folder in KUSTOMIZATIONS}


def one(manifests: list[Manifest], kind: str) -> Manifest:
    (found,) = [m for m in manifests if m["kind"] == kind]
    return found


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]


def bff_settings() -> set[str]:
    """Every variable the documentation's configuration table names (its first column)."""
    page = (REPO / "docs" / "reference" / "configuration.md").read_text()
    table = page[
        page.index("<!-- BEGIN GENERATED: configuration -->") : page.index(
            "<!-- END GENERATED: configuration -->"
        )
    ]
    return {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z_]+)`", row.split("|")[1])
    }


# --- schemas -------------------------------------------------------------------------------


def test_every_manifest_is_valid_against_the_kubernetes_schemas(
    built: dict[str, list[Manifest]],
) -> None:
    for folder, manifests in built.items():
        assert manifests, folder
        for manifest in manifests:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_refuses_a_misspelt_field_and_a_wrong_type(
    built: dict[str, list[Manifest]],
) -> None:
    deployment = one(built["web-bff"], "Deployment")
    misspelt = copy.deepcopy(deployment)
    container = misspelt["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "45s"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def test_the_compose_file_is_valid_against_the_compose_specification(tmp_path: Path) -> None:
    check = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run([*check, str(DEPLOY / "compose.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    broken["services"]["web-bff"]["deploy"]["replica"] = 3  # misspelt
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    done = subprocess.run([*check, str(tmp_path / "compose.yaml")], capture_output=True, text=True)
    assert done.returncode != 0


# --- each BFF on its own -------------------------------------------------------------------


@pytest.mark.parametrize("bff", BFFS)
def test_each_bff_has_its_own_deployment_service_autoscaler_and_disruption_budget(
    built: dict[str, list[Manifest]], bff: str
) -> None:
    manifests = built[bff]
    assert {m["kind"] for m in manifests} == {
        "Namespace",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
    }
    for manifest in manifests:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == bff
    deployment = one(manifests, "Deployment")
    assert deployment["metadata"]["name"] == bff
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/name"] == bff
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert one(manifests, "Service")["spec"]["selector"] == selector
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": bff,
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # A voluntary disruption never takes the last pods away.
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.rsplit("/", 1)[-1].startswith(f"{bff}:")


def test_the_two_bffs_share_no_object(built: dict[str, list[Manifest]]) -> None:
    def names(bff: str) -> set[tuple[str, str, str]]:
        return {
            (m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])
            for m in built[bff]
        }

    assert not names("web-bff") & names("mobile-bff")


# --- probes, rollout, shutdown --------------------------------------------------------------


SERVICES = ("PRODUCT", "INVENTORY", "PRICING", "REVIEWS")


def routes_of(bff: str) -> set[str]:
    module = __import__(f"{bff.replace('-', '_')}.app", fromlist=["create_app"])
    app = module.create_app({f"{n}_SERVICE_URL": "http://127.0.0.1:9" for n in SERVICES})
    return {route.path for route in app.routes}


@pytest.mark.parametrize("bff", BFFS)
def test_probes_point_at_real_routes_on_the_port_the_image_serves(
    built: dict[str, list[Manifest]], bff: str
) -> None:
    (container,) = one(built[bff], "Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    (exposed,) = parse().final.values("EXPOSE")
    assert ports == {"http": int(exposed), "ops": ops_port(container)}
    assert one(built[bff], "Service")["spec"]["ports"][0]["targetPort"] == "http"
    routes = routes_of(bff)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= routes


def ops_port(container: Manifest) -> int:
    """The operations listener's port the container sets (BFF_OPS_PORT), checked as the BFF
    checks it."""
    (setting,) = [e for e in container["env"] if e["name"] == "BFF_OPS_PORT"]
    port = GatewaySettings.from_env({}, {"BFF_OPS_PORT": setting["value"]}).ops_port
    assert port is not None
    return port


@pytest.mark.parametrize("bff", BFFS)
def test_the_operations_port_is_declared_scraped_and_never_in_the_service(
    built: dict[str, list[Manifest]], bff: str
) -> None:
    template = one(built[bff], "Deployment")["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ops = ops_port(container)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["ops"] == ops != ports["http"]
    # The scraper goes to each pod's operations port, not through the Service.
    assert int(template["metadata"]["annotations"]["prometheus.io/port"]) == ops
    # The Service (what the ingress and other pods reach) names the serving port only.
    for port in one(built[bff], "Service")["spec"]["ports"]:
        assert port["targetPort"] in ("http", ports["http"]), port
        assert port["targetPort"] not in ("ops", ops), port
    # The probes stay on the serving port: the balancer's view is the one they test.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http", probe
    # And nothing else exposes the pods: no other Service, Ingress or NodePort.
    for manifest in built[bff]:
        assert manifest["kind"] not in ("Ingress", "Route"), manifest["kind"]
        if manifest["kind"] == "Service":
            assert manifest["spec"].get("type", "ClusterIP") == "ClusterIP"


@pytest.mark.parametrize("bff", BFFS)
def test_a_rollout_drains_before_the_pod_is_killed(
    built: dict[str, list[Manifest]], bff: str
) -> None:
    deployment = one(built[bff], "Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spec = deployment["spec"]["template"]["spec"]
    config = one(built[bff], "ConfigMap")["data"]
    drain_s = GatewaySettings.from_env({}, config).drain
    # Kubernetes' SIGKILL comes only after the drain and the requests in flight.
    assert spec["terminationGracePeriodSeconds"] > drain_s + _STOP_BOUND_S
    # The pod leaves the endpoints well within the drain.
    readiness = spec["containers"][0]["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < drain_s


def test_every_container_has_limits_and_runs_as_non_root_on_a_read_only_filesystem(
    built: dict[str, list[Manifest]],
) -> None:
    checked = 0
    for manifests in built.values():
        for name, spec in pod_specs(manifests):
            pod_security = spec.get("securityContext", {})
            assert spec.get("automountServiceAccountToken") is False, name
            for container in spec["containers"] + spec.get("initContainers", []):
                checked += 1
                where = f"{name}/{container['name']}"
                resources = container["resources"]
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= resources[kind].keys(), where
                security = {**pod_security, **container.get("securityContext", {})}
                assert security["runAsNonRoot"] is True, where
                assert security["runAsUser"] != 0, where
                assert security["allowPrivilegeEscalation"] is False, where
                assert security["readOnlyRootFilesystem"] is True, where
                assert security["capabilities"]["drop"] == ["ALL"], where
    assert checked >= 4


@pytest.mark.parametrize("bff", BFFS)
def test_the_pod_runs_as_the_images_user_with_one_worker_per_cpu_of_its_limit(
    built: dict[str, list[Manifest]], bff: str
) -> None:
    spec = one(built[bff], "Deployment")["spec"]["template"]["spec"]
    (user,) = parse().final.values("USER")
    assert f"{spec['securityContext']['runAsUser']}:{spec['securityContext']['runAsGroup']}" == (
        user
    )
    (container,) = spec["containers"]
    assert "command" not in container and "args" not in container  # the image's --workers auto
    # Whole cores: --workers auto rounds the limit down, and the HPA measures the request.
    assert container["resources"]["limits"]["cpu"] == container["resources"]["requests"]["cpu"]
    assert float(container["resources"]["limits"]["cpu"]) >= 1


@pytest.mark.parametrize("bff", BFFS)
def test_the_configuration_is_one_the_bff_accepts_and_the_admin_token_a_secret(
    built: dict[str, list[Manifest]], bff: str
) -> None:
    config = one(built[bff], "ConfigMap")["data"]
    assert config.keys() <= bff_settings(), config.keys() - bff_settings()
    assert "BFF_ADMIN_TOKEN" not in config
    assert config["BFF_CACHE_NAMESPACE"] == bff
    module = __import__(f"{bff.replace('-', '_')}.app", fromlist=["SERVICE_URL_VARIABLES"])
    redis_url = example_redis_secret()["stringData"]["REDIS_URL"]
    settings = GatewaySettings.from_env(
        module.SERVICE_URL_VARIABLES, {**config, "REDIS_URL": redis_url}
    )
    assert settings.redis_url == redis_url
    (container,) = one(built[bff], "Deployment")["spec"]["template"]["spec"]["containers"]
    (token,) = [e for e in container["env"] if e["name"] == "BFF_ADMIN_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["key"] == "BFF_ADMIN_TOKEN"
    (config_ref,) = container["envFrom"]
    assert config_ref["configMapRef"]["name"] == one(built[bff], "ConfigMap")["metadata"]["name"]


def test_the_demo_redis_cluster_has_three_masters_from_one_configuration(
    built: dict[str, list[Manifest]],
) -> None:
    manifests = built["redis-demo-cluster"]
    statefulset = one(manifests, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    service = one(manifests, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    conf = one(manifests, "ConfigMap")["data"]["redis.conf"]
    assert re.search(r"^cluster-enabled yes$", conf, re.MULTILINE)
    job = one(manifests, "Job")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "--cluster create" in script
    external = one(built["redis-external"], "Service")
    assert external["spec"]["type"] == "ExternalName"
    # The example of the BFFs' Secret names the Service that redis-external declares.
    url = example_redis_secret()["stringData"]["REDIS_URL"]
    assert f"@{external['metadata']['name']}.{external['metadata']['namespace']}." in url


# --- Redis as a trust boundary ---------------------------------------------------------------


def example_redis_secret() -> Manifest:
    loaded: Manifest = yaml.safe_load(
        (DEPLOY / "kubernetes" / "redis-secret.example.yaml").read_text()
    )
    return loaded


def test_no_configmap_holds_a_redis_url_and_each_bff_reads_it_from_its_secret(
    built: dict[str, list[Manifest]],
) -> None:
    for manifests in built.values():
        for manifest in manifests:
            if manifest["kind"] == "ConfigMap":
                for key, value in manifest["data"].items():
                    assert key != "REDIS_URL", manifest["metadata"]["name"]
                    assert "redis://" not in value and "rediss://" not in value, key
    secret = example_redis_secret()
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    target = parse_redis_url(secret["stringData"]["REDIS_URL"])
    assert target.password  # the example shows where the password goes
    for bff in BFFS:
        spec = one(built[bff], "Deployment")["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        (redis_url,) = [e for e in container["env"] if e["name"] == "REDIS_URL"]
        # Required: pods that silently fell back to in-process state would not share.
        assert redis_url["valueFrom"]["secretKeyRef"] == {
            "name": secret["metadata"]["name"],
            "key": "REDIS_URL",
        }
        # The CA of a TLS Redis: the same Secret's ca.crt, where config.env says.
        env = (DEPLOY / "kubernetes" / bff / "config.env").read_text()
        (ca_file,) = re.findall(r"^# BFF_REDIS_CA_FILE=(\S+)$", env, re.MULTILINE)
        (volume,) = [
            v
            for v in spec["volumes"]
            if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]
        ]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert ca_file == f"{mount['mountPath']}/ca.crt"
        assert mount["readOnly"] is True


def network_policy(manifests: list[Manifest]) -> Manifest:
    policy = one(manifests, "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {}  # every pod of its namespace
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    return policy


def namespaces_of(peers: list[Manifest]) -> set[str]:
    found = set()
    for peer in peers:
        assert set(peer) <= {"namespaceSelector", "podSelector"}, peer
        assert "podSelector" not in peer or "namespaceSelector" not in peer, peer
        if "namespaceSelector" in peer:
            (name,) = peer["namespaceSelector"]["matchLabels"].values()
            found.add(name)
    return found


@pytest.mark.parametrize("bff", BFFS)
def test_the_bff_pods_reach_only_dns_redis_their_upstreams_and_the_identity_provider(
    built: dict[str, list[Manifest]], bff: str
) -> None:
    policy = network_policy(built[bff])
    config = one(built[bff], "ConfigMap")["data"]
    upstreams = {
        str(urlsplit(url).hostname).split(".")[1]
        for name, url in config.items()
        if name.endswith("_SERVICE_URL")
    }
    reached: dict[str, set[Any]] = {}
    for rule in policy["spec"]["egress"]:
        ports: set[Any] = {(p["port"], p.get("protocol", "TCP")) for p in rule.get("ports", [])}
        blocks = [peer["ipBlock"] for peer in rule["to"] if "ipBlock" in peer]
        if blocks:
            # Outside the cluster: HTTPS to public addresses, the identity provider's JWKS.
            assert ports == {(443, "TCP")}
            for block in blocks:
                assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(block["except"])
            reached.setdefault("identity provider", set()).update(ports)
            continue
        for namespace in namespaces_of(rule["to"]):
            reached.setdefault(namespace, set()).update(ports or {"any"})
    redis_namespace = one(built["redis-demo-cluster"], "Namespace")["metadata"]["name"]
    assert reached == {
        "kube-system": {(53, "UDP"), (53, "TCP")},
        redis_namespace: {(6379, "TCP")},
        **{namespace: {"any"} for namespace in upstreams},
        "identity provider": {(443, "TCP")},
    }
    # In: the ingress controller (the trusted proxy) on the serving port, and Prometheus on the
    # operations port only.
    sources = {
        name: {p["port"] for p in rule["ports"]}
        for rule in policy["spec"]["ingress"]
        for name in namespaces_of(rule["from"])
    }
    assert sources == {"ingress-nginx": {"http"}, "monitoring": {"ops"}}
    assert all(rule["from"] and rule.get("ports") for rule in policy["spec"]["ingress"])


def test_only_the_bffs_reach_the_demo_redis(built: dict[str, list[Manifest]]) -> None:
    manifests = built["redis-demo-cluster"]
    policy = network_policy(manifests)
    for rule in policy["spec"]["ingress"]:
        namespaces = namespaces_of(rule["from"])
        if namespaces:
            assert namespaces == set(BFFS)
            assert rule["ports"] == [{"port": 6379}]
        else:  # the nodes (and the Job creating the cluster) among themselves
            assert rule["from"] == [{"podSelector": {}}]
    for rule in policy["spec"]["egress"]:
        assert namespaces_of(rule["to"]) <= {"kube-system"}


def test_the_demo_redis_requires_a_password_from_a_secret(
    built: dict[str, list[Manifest]],
) -> None:
    manifests = built["redis-demo-cluster"]
    conf = one(manifests, "ConfigMap")["data"]["redis.conf"]
    assert not re.search(r"^\s*protected-mode\s+no", conf, re.MULTILINE)
    assert not re.search(r"^\s*requirepass", conf, re.MULTILINE)  # no password in a ConfigMap
    (included,) = re.findall(r"^include (\S+)$", conf, re.MULTILINE)
    (container,) = one(manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    script = container["command"][-1]
    # The included file is written from the Secret, requirepass and masterauth both (the
    # nodes of a cluster authenticate to each other too), before Redis starts.
    assert f"> {included}" in script
    assert "requirepass" in script and "masterauth" in script and "$REDIS_PASSWORD" in script
    assert script.rstrip().endswith("exec redis-server /etc/redis/redis.conf")
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(included).parent) in mounted
    # Every container that runs redis-cli (probes, the Job) authenticates.
    for name, spec in pod_specs(manifests):
        for each in spec["containers"]:
            secrets = {
                e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
                for e in each.get("env", [])
                if "valueFrom" in e
            }
            assert secrets.get("REDISCLI_AUTH") == "redis-auth", name
    assert {e["name"] for e in container["env"]} == {"REDIS_PASSWORD", "REDISCLI_AUTH"}


def test_the_trusted_proxies_are_the_load_balancers(built: dict[str, list[Manifest]]) -> None:
    for bff in BFFS:
        config = one(built[bff], "ConfigMap")["data"]
        settings = GatewaySettings.from_env({}, config)
        assert parse_networks(settings.trusted_proxies)
    services = compose()["services"]
    haproxy = services["haproxy"]["networks"]["default"]["ipv4_address"]
    (subnet,) = compose()["networks"]["default"]["ipam"]["config"]
    assert ipaddress.ip_address(haproxy) in ipaddress.ip_network(subnet["subnet"])
    for bff in BFFS:
        env = services[bff]["environment"]
        assert [str(n) for n in parse_networks(env["BFF_TRUSTED_PROXIES"])] == [f"{haproxy}/32"]


# --- compose and HAProxy --------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def interpolated(value: object) -> str:
    """A compose value as compose makes it with nothing set in the shell: ``${NAME:-word}``
    is ``word``."""
    return re.sub(r"\$\{[A-Z_]+:?-([^}]*)\}", r"\1", str(value))


def test_compose_sets_the_operations_port_and_no_admin_token() -> None:
    services = compose()["services"]
    for bff in BFFS:
        env = services[bff]["environment"]
        # The admin API is off unless whoever starts compose gives a token: none is shipped.
        assert re.fullmatch(r"\$\{BFF_ADMIN_TOKEN:?-?\}", env["BFF_ADMIN_TOKEN"])
        settings = GatewaySettings.from_env({}, {k: interpolated(v) for k, v in env.items()})
        assert settings.admin_token is None
        assert settings.ops_port is not None
        assert settings.ops_port != int(parse().final.values("EXPOSE")[0])
        # Reached on the compose network only: never published on the host.
        assert "ports" not in services[bff]


def test_compose_runs_several_instances_of_each_bff_from_its_image(tmp_path: Path) -> None:
    services = compose()["services"]
    for bff in BFFS:
        service = services[bff]
        assert service["build"]["args"]["SERVICE"] == bff
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / "uv.lock").is_file()
        assert service["deploy"]["replicas"] >= 2
        assert service["read_only"] is True
        assert "command" not in service
        grace = int(service["stop_grace_period"].rstrip("s"))
        env = service["environment"]
        settings = GatewaySettings.from_env({}, {k: interpolated(v) for k, v in env.items()})
        assert grace > settings.drain + _STOP_BOUND_S
        assert env.keys() <= bff_settings()
        assert env["BFF_CACHE_NAMESPACE"] == bff
    assert services["demo-upstreams"]["build"]["args"]["SERVICE"] == "demo-upstreams"


def haproxy_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z_]+)\}", HAPROXY_CONFIG.read_text()))


def test_compose_runs_the_load_balancer_configuration_the_fleet_tests_run() -> None:
    haproxy = compose()["services"]["haproxy"]
    assert "./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in haproxy["volumes"]
    env = haproxy["environment"]
    assert env.keys() == haproxy_variables()
    services = compose()["services"]
    for bff in BFFS:
        prefix = bff.replace("-", "_").upper()
        host, port = env[f"{prefix}_ADDRESS"].split(":")
        assert host == bff
        assert int(env[f"{prefix}_SLOTS"]) >= services[bff]["deploy"]["replicas"]
        assert port == parse().final.values("EXPOSE")[0]
        # The balancer forwards to the serving port, never to the operations port.
        assert port != str(services[bff]["environment"]["BFF_OPS_PORT"])
    # Nor does any of its frontends name it, or pass the operations paths on (a BFF started
    # without BFF_OPS_PORT serves them on its serving port).
    config = HAPROXY_CONFIG.read_text()
    for bff in BFFS:
        assert f":{services[bff]['environment']['BFF_OPS_PORT']}" not in config
    for frontend in ("web", "mobile"):
        section = config.split(f"\nfrontend {frontend}\n")[1].split("\n\n")[0]
        assert re.search(
            r"^\s*http-request deny deny_status 404 if .*/metrics.*/admin", section, re.MULTILINE
        ), section


def test_haproxy_accepts_its_configuration_with_composes_environment() -> None:
    binary = haproxy_binary()
    assert binary is not None, "haproxy not installed (./run tests installs Debian's)"
    env = {k: str(v) for k, v in compose()["services"]["haproxy"]["environment"].items()}
    done = subprocess.run(
        [binary, "-c", "-f", str(HAPROXY_CONFIG)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # and refuses it without: every variable is needed.
    done = subprocess.run([binary, "-c", "-f", str(HAPROXY_CONFIG)], capture_output=True, text=True)
    assert done.returncode != 0
