#!/usr/bin/env python3
"""Validate docker-compose.yml without a Docker engine.

1. The file must satisfy the Compose Specification's JSON Schema, vendored as
   deploy/compose-spec.schema.json. Source of that file: PyPI package check-jsonschema==0.39.0,
   path check_jsonschema/builtin_schemas/vendor/compose-spec.json (its vendored copy of the
   compose-spec project's schema/compose-spec.json, Apache-2.0, draft 2020-12),
   sha256 d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64.
   To refresh it: pip download --no-deps check-jsonschema==<newer>, copy that file, update the
   version and sha256 here.
2. Cross-references that `docker compose config` would reject and the schema can't see:
   every depends_on names a service, every named volume a service mounts is declared at the top
   level, and every build's Dockerfile exists.

Usage: python scripts/validate-compose.py [docker-compose.yml]
Dependencies: scripts/requirements-ci.txt (jsonschema, PyYAML). Exits 1 naming each failing path.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

try:
    import jsonschema
    import yaml
except ImportError as err:  # pragma: no cover - environment problem
    sys.exit(f"validate-compose: missing dependency ({err}); run: pip install -r scripts/requirements-ci.txt")

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "deploy" / "compose-spec.schema.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"


def dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def closest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The branch error of an anyOf/oneOf most likely to be the real mistake: one that isn't
    a mere type mismatch (the branch for another shape of the value), as deep as possible."""
    while error.context:
        error = max(error.context, key=lambda e: (e.validator != "type", len(e.absolute_path)))
    return error


def schema_errors(doc: object) -> list[str]:
    raw = SCHEMA.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SCHEMA_SHA256:
        # The provenance note above would be wrong: make whoever refreshed it update the note.
        return [f"{SCHEMA.relative_to(ROOT)}: sha256 {digest} is not the vendored one; update SCHEMA_SHA256 and its source note"]
    validator = jsonschema.Draft202012Validator(json.loads(raw))
    errors = list(validator.iter_errors(doc))
    paths = [tuple(e.absolute_path) for e in errors]
    out = []
    for error, path in sorted(zip(errors, paths), key=lambda ep: [str(p) for p in ep[1]]):
        # In draft 2020-12 a property that failed validation does not count as "evaluated", so
        # every error inside a service also makes the service report its properties as
        # unexpected. Report those only when nothing below explains them.
        if error.validator == "unevaluatedProperties" and any(
            other != path and other[: len(path)] == path for other in paths
        ):
            continue
        message = error.message
        if error.context:
            best = closest(error)
            message = f"{dotted(best.absolute_path)}: {best.message}"
            if tuple(best.absolute_path) != path:
                out.append(message)
                continue
        out.append(f"{dotted(path)}: {message}")
    return out


def named_volume(spec: object) -> str | None:
    """The named volume a service volume entry mounts, if any (not a bind mount or tmpfs)."""
    if isinstance(spec, dict):
        return spec.get("source") if spec.get("type", "volume") == "volume" else None
    if isinstance(spec, str) and ":" in spec:
        source = spec.split(":", 1)[0]
        if source and not source.startswith((".", "/", "~", "$")):
            return source
    return None


def bind_source(spec: object) -> str | None:
    """The host path a service volume entry bind-mounts, if any."""
    if isinstance(spec, dict):
        return spec.get("source") if spec.get("type") == "bind" else None
    if isinstance(spec, str) and ":" in spec and spec.startswith((".", "/", "~")):
        return spec.split(":", 1)[0]
    return None


def missing_bind_sources(doc: dict, compose_dir: Path) -> list[str]:
    """Bind-mounted host files that don't exist (yet): a warning, since they may be written
    by another change (e.g. deploy/orderflow.toml), but `docker compose up` will need them."""
    users: dict[str, list[str]] = {}
    for name, service in (doc.get("services") or {}).items():
        for volume in (service or {}).get("volumes") or []:
            source = bind_source(volume)
            if source and not source.startswith("~") and not (compose_dir / source).exists():
                users.setdefault(source, []).append(name)
    return [f"bind source {src} does not exist (mounted by {', '.join(names)})" for src, names in users.items()]


def reference_errors(doc: dict, compose_dir: Path) -> list[str]:
    out = []
    services = doc.get("services") or {}
    declared_volumes = set((doc.get("volumes") or {}).keys())
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        depends = service.get("depends_on") or []
        for dep in depends if isinstance(depends, list) else depends.keys():
            if dep not in services:
                out.append(f"services.{name}.depends_on: no service named {dep!r}")
        for i, volume in enumerate(service.get("volumes") or []):
            source = named_volume(volume)
            if source and source not in declared_volumes:
                out.append(f"services.{name}.volumes[{i}]: named volume {source!r} is not declared under top-level volumes")
        build = service.get("build")
        if isinstance(build, dict):
            context = compose_dir / build.get("context", ".")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                out.append(f"services.{name}.build.dockerfile: {dockerfile.relative_to(compose_dir)} does not exist")
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / "docker-compose.yml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        print(f"validate-compose: {path}: cannot load: {err}", file=sys.stderr)
        return 1
    if not isinstance(doc, dict):
        print(f"validate-compose: {path}: top level is not a mapping", file=sys.stderr)
        return 1
    problems = schema_errors(doc)
    if not problems:
        problems = reference_errors(doc, path.resolve().parent)
    if not problems:
        for warning in missing_bind_sources(doc, path.resolve().parent):
            print(f"validate-compose: warning: {warning}", file=sys.stderr)
    if problems:
        print(f"validate-compose: {path}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"validate-compose: {path.name} ok ({len(doc.get('services') or {})} services, Compose Specification schema + references)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
