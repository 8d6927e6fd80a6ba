#!/usr/bin/env python3
"""Check that the input-contract docs agree with themselves, and the README's metrics table
with the code.

  * every schema in docs/schemas/ is a valid JSON Schema (draft 2020-12) and its `kind` enum
    lists exactly the kinds that this script maps to its topic;
  * there is exactly one example per kind, docs/examples/<kind>.json, and it passes the schema
    of its topic plus the rule the schema cannot express (order_placed total_fen arithmetic);
  * every file in docs/examples/screened/ (records the intake accepts and the state consumer then
    screens into an exception, e.g. an incomplete address) passes its topic's schema and rules;
  * every file in docs/examples/invalid/ is rejected: a *.json file must parse as JSON and then
    fail its topic's schema or the total_fen rule; any other file must not parse as JSON at all;
  * every relative link in docs/input-contract.md points at a file that exists;
  * the metrics table in README.md (between <!-- metrics:begin --> and <!-- metrics:end -->)
    equals the MetricDef constants of crates/runtime/src/telemetry.rs, in the order of `ALL`
    (what `orderflow metrics` prints).

Run with the CI virtualenv: .tools/venv/bin/python scripts/check-docs.py
(dependencies: scripts/requirements-ci.txt). Exits 1 and names each problem on failure.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

try:
    import jsonschema
    import rfc3339_validator  # noqa: F401  (without it FormatChecker silently accepts any date-time)
except ImportError as err:  # pragma: no cover - environment problem, not a docs problem
    sys.exit(f"check-docs: missing dependency ({err}); run: pip install -r scripts/requirements-ci.txt")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCHEMAS = DOCS / "schemas"
EXAMPLES = DOCS / "examples"
INVALID = EXAMPLES / "invalid"
SCREENED = EXAMPLES / "screened"
GUIDE = DOCS / "input-contract.md"
README = ROOT / "README.md"
TELEMETRY = ROOT / "crates" / "runtime" / "src" / "telemetry.rs"
METRICS_BEGIN = "<!-- metrics:begin -->"
METRICS_END = "<!-- metrics:end -->"

# The contract (docs/input-contract.md): which topic accepts which kind.
KIND_TO_TOPIC = {
    "order_placed": "in.orders",
    "order_cancelled": "in.orders",
    "order_completed": "in.orders",
    "payment_captured": "in.payments",
    "payment_failed": "in.payments",
    "payment_refunded": "in.payments",
    "shipment_dispatched": "in.shipments",
    "shipment_delivered": "in.shipments",
    "shipment_returned": "in.shipments",
    "warehouse_accepted": "in.shipments",
    "stock_level_changed": "in.inventory",
    "review_approved": "in.actions",
    "review_rejected": "in.actions",
    "exception_resolved": "in.actions",
    "exception_assigned": "in.actions",
    "customer_choice": "in.actions",
}
TOPICS = sorted(set(KIND_TO_TOPIC.values()))

Validator = jsonschema.Draft202012Validator
problems: list[str] = []


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def json_path(error: jsonschema.ValidationError) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return "$" + parts


def explain(validator: jsonschema.Validator, record: object) -> list[str]:
    """Schema errors in words. For the oneOf over kinds, report only the branch whose
    `kind` const matches the record, instead of "is not valid under any of the given schemas"."""
    kind = record.get("kind") if isinstance(record, dict) else None
    out = []
    for error in sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path)):
        if error.validator == "oneOf" and error.context and kind is not None:
            branches = error.schema["oneOf"]
            matching = [
                i
                for i, branch in enumerate(branches)
                if branch.get("$ref", "").rsplit("/", 1)[-1] == kind
            ]
            sub = [e for e in error.context if e.schema_path and e.schema_path[0] in matching]
            if sub:
                out += [f"{json_path(e)}: {e.message}" for e in sub]
                continue
            if "kind" in validator.schema.get("properties", {}) and kind not in validator.schema[
                "properties"
            ]["kind"].get("enum", []):
                continue  # already reported by the top-level `kind` enum
        out.append(f"{json_path(error)}: {error.message}")
    return out


def intake_rules(record: object) -> list[str]:
    """Rules the intake enforces that JSON Schema cannot express."""
    if not isinstance(record, dict) or record.get("kind") != "order_placed":
        return []
    try:
        lines_total = sum(line["qty"] * line["unit_price_fen"] for line in record["lines"])
        expected = lines_total - record.get("discount_fen", 0) + record.get("shipping_fen", 0)
        total = record["total_fen"]
    except (KeyError, TypeError):
        return []  # the schema already reports the missing / mistyped field
    if total != expected:
        return [
            f"$.total_fen: {total} != sum(qty*unit_price_fen) {lines_total}"
            f" - discount_fen {record.get('discount_fen', 0)}"
            f" + shipping_fen {record.get('shipping_fen', 0)} = {expected}"
        ]
    return []


def load_schemas() -> dict[str, jsonschema.Validator]:
    validators = {}
    for topic in TOPICS:
        path = SCHEMAS / f"{topic}.schema.json"
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            Validator.check_schema(schema)
        except (OSError, ValueError) as err:
            problems.append(f"{rel(path)}: cannot read: {err}")
            continue
        except jsonschema.SchemaError as err:
            where = "/".join(str(p) for p in err.absolute_path)
            problems.append(f"{rel(path)}: not a valid draft 2020-12 schema at /{where}: {err.message}")
            continue
        declared = set(schema.get("properties", {}).get("kind", {}).get("enum", []))
        expected = {k for k, t in KIND_TO_TOPIC.items() if t == topic}
        if declared != expected:
            problems.append(
                f"{rel(path)}: kind enum {sorted(declared)} != kinds of {topic} {sorted(expected)}"
            )
        validators[topic] = Validator(schema, format_checker=Validator.FORMAT_CHECKER)
    extra = {p.name for p in SCHEMAS.glob("*.json")} - {f"{t}.schema.json" for t in TOPICS}
    for name in sorted(extra):
        problems.append(f"docs/schemas/{name}: schema for an unknown topic")
    return validators


def check_accepted(paths: list[Path], validators: dict[str, jsonschema.Validator],
                   label: str, named_for_kind: bool) -> int:
    """Records the intake must accept: valid JSON of a known kind that passes its topic's schema
    and the intake rules. With `named_for_kind`, each file is named for its record's kind."""
    checked = 0
    for path in paths:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            problems.append(f"{rel(path)}: not JSON: {err}")
            continue
        kind = record.get("kind") if isinstance(record, dict) else None
        if named_for_kind and kind != path.stem:
            problems.append(f"{rel(path)}: kind is {kind!r}, the file name says {path.stem!r}")
            continue
        topic = KIND_TO_TOPIC.get(kind)
        if topic is None:
            problems.append(f"{rel(path)}: kind {kind!r} belongs to no input topic")
            continue
        if topic not in validators:
            continue  # schema problem already reported
        errors = explain(validators[topic], record) + intake_rules(record)
        problems.extend(f"{rel(path)} ({label}, {topic}): {e}" for e in errors)
        checked += 1
    return checked


def check_valid_examples(validators: dict[str, jsonschema.Validator]) -> int:
    present = {p.stem for p in EXAMPLES.glob("*.json")}
    for kind in sorted(set(KIND_TO_TOPIC) - present):
        problems.append(f"docs/examples/{kind}.json: missing (one example per kind)")
    paths = sorted(EXAMPLES.glob("*.json"))
    return check_accepted(paths, validators, "valid example", named_for_kind=True)


def check_screened_examples(validators: dict[str, jsonschema.Validator]) -> int:
    """Accepted records that screening turns into exceptions: any kind, named for the finding."""
    paths = sorted(p for p in SCREENED.iterdir() if p.is_file()) if SCREENED.is_dir() else []
    return check_accepted(paths, validators, "accepted, screened later", named_for_kind=False)


def check_invalid_examples(validators: dict[str, jsonschema.Validator]) -> int:
    checked = 0
    files = sorted(p for p in INVALID.iterdir() if p.is_file()) if INVALID.is_dir() else []
    if not files:
        problems.append(f"{rel(INVALID)}: no invalid examples")
    for path in files:
        raw = path.read_bytes()
        try:
            record = json.loads(raw.decode("utf-8"))
            parsed = True
        except (UnicodeDecodeError, ValueError):
            parsed = False
        checked += 1
        if path.suffix != ".json":
            if parsed:
                problems.append(f"{rel(path)}: meant to be malformed, but it parses as JSON")
            continue
        if not parsed:
            problems.append(f"{rel(path)}: a .json invalid example must be JSON (name malformed input *.txt)")
            continue
        kind = record.get("kind") if isinstance(record, dict) else None
        topic = KIND_TO_TOPIC.get(kind)
        # A kind of no topic must be refused by every topic; otherwise by its own topic.
        targets = [topic] if topic else TOPICS
        accepted_by = [
            t for t in targets if t in validators and not explain(validators[t], record)
        ]
        if accepted_by and not intake_rules(record):
            problems.append(
                f"{rel(path)}: must be rejected, but passes the schema of {', '.join(accepted_by)}"
                " and the intake's total_fen rule"
            )
    return checked


def check_guide_links() -> None:
    if not GUIDE.is_file():
        problems.append(f"{rel(GUIDE)}: missing")
        return
    text = GUIDE.read_text(encoding="utf-8")
    for target in dict.fromkeys(re.findall(r"\]\(([^)\s]+)\)", text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # external link or anchor
        local = (GUIDE.parent / target.split("#", 1)[0]).resolve()
        if not local.exists():
            problems.append(f"{rel(GUIDE)}: link to {target} points at nothing")


METRIC_DEF = re.compile(
    r'pub const (?P<ident>[A-Z][A-Z0-9_]*): MetricDef = MetricDef \{\s*'
    r'name: "(?P<name>[^"]*)",\s*'
    r'kind: MetricKind::(?P<kind>[A-Za-z]+),\s*'
    r'labels: &\[(?P<labels>[^\]]*)\],\s*'
    r'help: "(?P<help>(?:[^"\\]|\\.)*)",\s*\};'
)
METRICS_ALL = re.compile(r"pub const ALL: &\[MetricDef\] = &\[(?P<idents>[^\]]*)\];")


def metric_rows() -> list[str] | None:
    """The metrics table as telemetry.rs defines it (the rows of `telemetry::markdown_table`)."""
    text = TELEMETRY.read_text(encoding="utf-8")
    defs = {m["ident"]: m for m in METRIC_DEF.finditer(text)}
    declared = set(re.findall(r"pub const ([A-Z][A-Z0-9_]*): MetricDef\b", text))
    for ident in sorted(declared - set(defs)):
        problems.append(f"{rel(TELEMETRY)}: cannot read the MetricDef {ident} (fields name, kind, labels, help in that order)")
    listed = METRICS_ALL.search(text)
    if listed is None:
        problems.append(f"{rel(TELEMETRY)}: no `pub const ALL: &[MetricDef] = &[...];`")
        return None
    order = [ident for ident in re.split(r"[\s,]+", listed["idents"]) if ident]
    for ident in sorted(set(defs) - set(order)):
        problems.append(f"{rel(TELEMETRY)}: {ident} is defined but not in ALL")
    rows = ["| name | type | labels | help |", "|---|---|---|---|"]
    for ident in order:
        if ident not in defs:
            problems.append(f"{rel(TELEMETRY)}: ALL names {ident}, which is no MetricDef")
            continue
        m = defs[ident]
        labels = re.findall(r'"([^"]*)"', m["labels"])
        cell = ", ".join(f"`{label}`" for label in labels) or "-"
        help_text = re.sub(r"\\(.)", r"\1", m["help"])
        rows.append(f"| `{m['name']}` | {m['kind'].lower()} | {cell} | {help_text} |")
    return rows


def check_metrics_table() -> int:
    expected = metric_rows()
    if expected is None:
        return 0
    text = README.read_text(encoding="utf-8")
    if text.count(METRICS_BEGIN) != 1 or text.count(METRICS_END) != 1:
        problems.append(f"{rel(README)}: needs one {METRICS_BEGIN} and one {METRICS_END} around the metrics table")
        return 0
    start = text.index(METRICS_BEGIN) + len(METRICS_BEGIN)
    actual = [line for line in text[start:text.index(METRICS_END)].splitlines() if line.strip()]
    for number, (want, got) in enumerate(zip(expected, actual), start=1):
        if want != got:
            problems.append(
                f"{rel(README)}: metrics table line {number} differs from {rel(TELEMETRY)};"
                f" README has {got!r}, telemetry.rs says {want!r}"
                " (regenerate with `orderflow metrics`)"
            )
            return len(expected) - 2
    if len(actual) != len(expected):
        extra = actual[len(expected):] or expected[len(actual):]
        where = "README has" if len(actual) > len(expected) else "README lacks"
        problems.append(
            f"{rel(README)}: metrics table has {len(actual)} lines, telemetry.rs gives {len(expected)};"
            f" {where} {extra[0]!r} (regenerate with `orderflow metrics`)"
        )
    return len(expected) - 2


def main() -> int:
    validators = load_schemas()
    valid = check_valid_examples(validators) + check_screened_examples(validators)
    invalid = check_invalid_examples(validators)
    check_guide_links()
    metrics = check_metrics_table()
    if problems:
        print(f"check-docs: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(
        f"check-docs: ok ({len(validators)} schemas, {valid} examples valid,"
        f" {invalid} invalid examples rejected, {metrics} metrics in the README table)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
