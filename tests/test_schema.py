"""The record schema is a public contract: output validates, docs cover every field, formats agree."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO, lab_captures

from rpcinspect.output.jsonschema import json_schema
from rpcinspect.records import (
    SCHEMA_VERSION,
    AnomalyRecord,
    BindRecord,
    CallRecord,
    ContextRecord,
    EndpointRecord,
    SummaryRecord,
)

DEMO = REPO / "captures" / "demo.pcap"


def cli(*args: str) -> bytes:
    proc = subprocess.run([sys.executable, "-m", "rpcinspect", *args], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(cli("schema"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == json.loads(json.dumps(json_schema()))
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", lab_captures(), ids=[p.name for p in lab_captures()])
def test_every_jsonl_line_validates(path: Path, validator: jsonschema.Draft202012Validator) -> None:
    lines = cli("analyze", "--format", "jsonl", str(path)).splitlines()
    assert lines, "no output"
    kinds = set()
    for line in lines:
        rec = json.loads(line)
        errors = list(validator.iter_errors(rec))
        assert not errors, (rec.get("record"), errors[0].message)
        assert rec["schema"] == SCHEMA_VERSION
        kinds.add(rec["record"])
    assert json.loads(lines[-1])["record"] == "summary"
    assert "summary" in kinds


def test_schema_rejects_unknown_and_missing_fields(validator: jsonschema.Draft202012Validator) -> None:
    rec = json.loads(cli("analyze", "--format", "jsonl", str(DEMO)).splitlines()[1])
    assert validator.is_valid(rec)
    assert not validator.is_valid({**rec, "surprise": 1})
    missing = dict(rec)
    missing.pop(next(iter(missing)))
    assert not validator.is_valid(missing)
    assert not validator.is_valid({**rec, "schema": SCHEMA_VERSION + 1})


def test_docs_describe_every_field() -> None:
    doc = (REPO / "docs" / "schema.md").read_text()
    assert f"version {SCHEMA_VERSION}" in doc
    documented = set(re.findall(r"`([a-z_]+)`", doc))
    for cls in (CallRecord, BindRecord, ContextRecord, EndpointRecord, AnomalyRecord, SummaryRecord):
        for f in dataclasses.fields(cls):
            assert f.name in documented, f"{cls.__name__}.{f.name} is not documented in docs/schema.md"


def test_json_and_csv_agree_with_jsonl() -> None:
    lines = [json.loads(x) for x in cli("analyze", "--format", "jsonl", str(DEMO)).splitlines()]
    calls = [r for r in lines if r["record"] == "call"]
    doc = json.loads(cli("analyze", "--format", "json", str(DEMO)))
    assert doc["schema"] == SCHEMA_VERSION
    assert doc["calls"] == calls
    assert doc["binds"] == [r for r in lines if r["record"] == "bind"]
    assert doc["summary"]["calls"] == len(calls) > 0
    rows = list(csv.DictReader(io.StringIO(cli("analyze", "--format", "csv", str(DEMO)).decode())))
    assert [r["operation"] for r in rows] == [c["operation"] for c in calls]
    assert [int(r["req_frame"]) for r in rows] == [c["req_frame"] for c in calls]
    assert list(rows[0]) == [f.name for f in dataclasses.fields(CallRecord)]


def test_output_file_and_table(tmp_path: Path) -> None:
    out = tmp_path / "calls.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "rpcinspect", "analyze", "-f", "jsonl", "-o", str(out), str(DEMO)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == ""
    assert "Calls per interface and operation" in proc.stderr  # the summary goes to the terminal side
    assert sum(1 for line in out.read_text().splitlines() if '"record":"call"' in line) == 22
    table = cli("analyze", str(DEMO)).decode()
    for needle in ("ept_map", "SamrEnumerateUsersInDomain", "nca_s_fault_access_denied", "Conversations"):
        assert needle in table
