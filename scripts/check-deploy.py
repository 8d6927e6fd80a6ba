#!/usr/bin/env python3
"""Check the shipped operations assets against the code, without a cluster.

1. deploy/Dockerfile builds with a Rust image at or above the workspace's rust-version
   (Cargo.toml [workspace.package]).
2. The Grafana dashboard (deploy/grafana/*.json) is valid JSON with unique panel ids, and
   every orderflow metric its queries use is defined in crates/runtime/src/telemetry.rs
   (histograms as their _bucket/_sum/_count series).
3. Every orderflow metric the Prometheus rules (deploy/prometheus/*-rules.yml) use is defined
   there too (`promtool check rules` and `promtool test rules` run in scripts/test.sh).
4. The Kubernetes layouts (deploy/k8s/base and every overlay), rendered with kustomize, are
   valid against the Kubernetes schemas shipped in the PyPI package kubernetes-validate
   (strict: no unknown fields), for KUBERNETES_VERSION; every orderflow container probes
   /healthz (liveness) and /readyz (readiness) on the port telemetry.metrics-listen of the
   mounted config names; the k8s config loads as orderflow config would (known sections);
   and base/rules.toml is deploy/rules/rules.toml.

Usage: python scripts/check-deploy.py KUSTOMIZE_BINARY
Dependencies: scripts/requirements-ci.txt (PyYAML, kubernetes-validate). Exits 1 naming each
problem.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

try:
    import kubernetes_validate
    import yaml
except ImportError as err:  # pragma: no cover - environment problem
    sys.exit(f"check-deploy: missing dependency ({err}); run: pip install -r scripts/requirements-ci.txt")

ROOT = Path(__file__).resolve().parent.parent
TELEMETRY = ROOT / "crates" / "runtime" / "src" / "telemetry.rs"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"

METRIC_DEF = re.compile(
    r'pub const (\w+): MetricDef = MetricDef \{\s*name: "([a-z0-9_]+)",\s*kind: MetricKind::(\w+),'
)
# An orderflow series name in PromQL; recording rules (orderflow:...) have a colon.
SERIES = re.compile(r"\b(orderflow_[a-z0-9_]+)\b")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def defined_series() -> set[str]:
    """Every series name telemetry.rs's metrics are exported as."""
    series = set()
    for _, name, kind in METRIC_DEF.findall(TELEMETRY.read_text()):
        series.add(name)
        if kind == "Histogram":
            series.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return series


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def check_dockerfile() -> list[str]:
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    wanted = workspace["workspace"]["package"]["rust-version"]
    images = re.findall(r"^FROM\s+rust:(\d+(?:\.\d+)*)\S*", DOCKERFILE.read_text(), re.MULTILINE)
    if not images:
        return [f"{rel(DOCKERFILE)}: no `FROM rust:<version>` stage"]
    return [
        f"{rel(DOCKERFILE)}: builds with rust:{image}, below the workspace rust-version {wanted}"
        for image in images
        if version(image) < version(wanted)
    ]


def unknown_series(where: str, expr: str, known: set[str]) -> list[str]:
    return [
        f"{where}: `{name}` is no metric of {rel(TELEMETRY)}"
        for name in sorted(set(SERIES.findall(expr)))
        if name not in known
    ]


def check_dashboards(known: set[str]) -> tuple[list[str], int]:
    problems, queries = [], 0
    for path in sorted((ROOT / "deploy" / "grafana").glob("*.json")):
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            problems.append(f"{rel(path)}: not JSON: {err}")
            continue
        panels = list(dashboard.get("panels", []))
        for panel in list(panels):
            panels.extend(panel.get("panels", []))
        ids = [panel.get("id") for panel in panels]
        if len(ids) != len(set(ids)):
            problems.append(f"{rel(path)}: panel ids repeat")
        for panel in panels:
            title = panel.get("title") or f"panel {panel.get('id')}"
            if panel.get("type") != "row" and not panel.get("targets"):
                problems.append(f"{rel(path)}: {title!r} queries nothing")
            for target in panel.get("targets", []):
                queries += 1
                problems += unknown_series(f"{rel(path)}: {title!r}", target.get("expr", ""), known)
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            problems += unknown_series(f"{rel(path)}: variable {variable.get('name')}", text, known)
    return problems, queries


def check_rules(known: set[str]) -> tuple[list[str], int]:
    problems, rules = [], 0
    for path in sorted((ROOT / "deploy" / "prometheus").glob("*-rules.yml")):
        document = yaml.safe_load(path.read_text())
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                rules += 1
                name = rule.get("alert") or rule.get("record")
                problems += unknown_series(f"{rel(path)}: {name}", rule.get("expr", ""), known)
    return problems, rules


def metrics_port(config_text: str) -> int | None:
    listen = tomllib.loads(config_text).get("telemetry", {}).get("metrics-listen")
    return int(listen.rsplit(":", 1)[1]) if listen else None


def check_workload(where: str, spec: dict, port: int | None) -> list[str]:
    problems = []
    for container in spec.get("containers", []):
        name = f"{where} container {container.get('name')}"
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
        if ports.get("metrics") != port:
            problems.append(f"{name}: port `metrics` is {ports.get('metrics')}, the config serves {port}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            got = container.get(probe, {}).get("httpGet", {})
            if got.get("path") != path or got.get("port") != "metrics":
                problems.append(f"{name}: {probe} must GET {path} on port `metrics`, has {got}")
        if "memory" not in container.get("resources", {}).get("requests", {}):
            problems.append(f"{name}: no memory request")
    return problems


def check_kubernetes(kustomize: str) -> tuple[list[str], int]:
    problems, objects = [], 0
    base = K8S / "base"
    if (base / "rules.toml").read_bytes() != (ROOT / "deploy" / "rules" / "rules.toml").read_bytes():
        problems.append(f"{rel(base / 'rules.toml')}: differs from deploy/rules/rules.toml; copy it over")
    layouts = [base] + sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
    for layout in layouts:
        built = subprocess.run([kustomize, "build", str(layout)], capture_output=True, text=True)
        if built.returncode != 0:
            problems.append(f"{rel(layout)}: kustomize build failed: {built.stderr.strip()}")
            continue
        documents = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
        config = next(
            (d for d in documents if d.get("kind") == "ConfigMap" and "orderflow.toml" in d.get("data", {})),
            None,
        )
        port = metrics_port(config["data"]["orderflow.toml"]) if config else None
        if config is None:
            problems.append(f"{rel(layout)}: no ConfigMap holds orderflow.toml")
        kinds = {d.get("kind") for d in documents}
        for wanted in ("StatefulSet", "Deployment", "PodDisruptionBudget", "Job"):
            if wanted not in kinds:
                problems.append(f"{rel(layout)}: renders no {wanted}")
        for document in documents:
            objects += 1
            where = f"{rel(layout)}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as err:
                path = ".".join(str(p) for p in err.path)
                problems.append(f"{where}: {path}: {err.message}")
            except kubernetes_validate.utils.SchemaNotFoundError as err:
                problems.append(f"{where}: no schema for it in Kubernetes {KUBERNETES_VERSION}: {err}")
            if document.get("kind") in ("StatefulSet", "Deployment"):
                problems += check_workload(where, document["spec"]["template"]["spec"], port)
            if document.get("kind") == "StatefulSet" and not document["spec"].get("volumeClaimTemplates"):
                problems.append(f"{where}: each copy needs its own volume (volumeClaimTemplates)")
    return problems, objects


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[-2], file=sys.stderr)
        return 2
    known = defined_series()
    problems = check_dockerfile()
    dashboard_problems, queries = check_dashboards(known)
    rule_problems, rules = check_rules(known)
    k8s_problems, objects = check_kubernetes(argv[1])
    problems += dashboard_problems + rule_problems + k8s_problems
    for problem in problems:
        print(f"check-deploy: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"check-deploy: ok (Dockerfile rust version, {queries} dashboard queries and {rules} rules"
        f" over defined metrics, {objects} Kubernetes objects valid for {KUBERNETES_VERSION})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
