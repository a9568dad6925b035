"""`mint-distill bench`: one row per stage from the real component benchmarks, JSON and Markdown."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import embedded_or_skip

from mint_distill.cli import cli
from mint_distill.models.precision import default_device_type, native_bf16

CHEAP_STAGES = ("teacher", "students", "encoding", "data")


@pytest.mark.integration
def test_quick_bench_writes_measured_rows_for_every_stage(tmp_path):
    embedded_or_skip("smollm2-135m-instruct")
    minilm = embedded_or_skip("all-minilm-l6-v2")
    out, table = tmp_path / "bench.json", tmp_path / "bench.md"
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "--quick",
            "--repeats=2",
            f"--only={','.join(CHEAP_STAGES)}",
            f"--out={out}",
            f"--markdown={table}",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    native = native_bf16(default_device_type())
    assert [row["stage"] for row in report["rows"]] == ["teacher"] * (1 + native) + list(CHEAP_STAGES[1:])
    teacher = [row["measure"] for row in report["rows"] if row["stage"] == "teacher"]
    assert [m.split(",")[0] for m in teacher] == ["generation float32", *(["generation bfloat16"] if native else [])]
    students = [row["measure"] for row in report["rows"] if row["stage"] == "students"]
    assert [m.split(",")[0] for m in students] == [f"bi-encoder training {'bfloat16' if native else 'float32'}"]
    for row in report["rows"]:
        assert len(row["values"]) == 2 and row["median"] > 0, row
        assert row["min"] <= row["median"] <= row["max"], row
        assert row["peak_memory_mb"] > 0, row
    units = {row["stage"]: row["unit"] for row in report["rows"]}
    assert units == {
        "teacher": "tokens/s",
        "students": "examples/s",
        "encoding": "items/s",
        "data": "reviews/s",
    }
    assert {row["model"] for row in report["rows"] if row["stage"] in ("students", "encoding")} == {
        minilm
    }
    machine = report["machine"]
    assert machine["cores"] > 0 and machine["torch_threads"] > 0 and machine["ram_gb"] > 0
    assert machine["cpu"] and machine["torch"] and machine["date"]
    assert machine["bf16"] == ("native" if native else "emulated")
    assert report["repeats"] == 2 and report["mode"] == "quick"
    markdown = table.read_text()
    assert markdown.startswith(f"Machine: {machine['cpu']}")
    assert markdown.count("\n| ") == 1 + len(report["rows"])  # header and one line per row


def test_an_unknown_stage_is_refused_by_name(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--only=teacher,trainer", f"--out={out}"])
    assert result.exit_code == 2
    assert "'trainer'" in result.output and "teacher, filter, students" in result.output
    assert not out.exists()


def test_an_unwritable_out_is_refused_before_measuring(tmp_path, monkeypatch):
    from mint_distill import bench

    monkeypatch.setattr(bench, "run_bench", lambda *args, **kwargs: pytest.fail("measured before checking --out"))
    (tmp_path / "file").write_text("")
    for option in ("--out", "--markdown"):
        result = CliRunner().invoke(cli, ["bench", "--only=data", f"{option}={tmp_path / 'file' / 'bench.json'}"])
        assert result.exit_code == 2 and f"'{option}'" in result.output and "is a file, not a folder" in result.output


def test_the_export_row_exports_in_a_process_of_its_own_before_it_measures(monkeypatch):
    from mint_distill import bench
    from mint_distill.export.bench import ensure_export

    calls = []

    def recorded(function, *args):
        calls.append((function, args[0]))
        return ((2.0,), 900.0) if function is bench._export_speedups else None

    monkeypatch.setattr(bench, "in_fresh_process", recorded)
    rows = bench.bench_export(bench.QUICK, repeats=1)
    assert calls == [call for model in bench.QUICK.encoders for call in ((ensure_export, model), (bench._export_speedups, model))]
    assert [row.peak_memory_mb for row in rows] == [900.0] * len(bench.QUICK.encoders)
