"""The CLI as a new user meets it: help on every option, a clear line when an extra is
missing, drill's option checks, and drill plot labels that do not overlap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cachebridge.cli import cli
from cachebridge.drill import label_positions


def _walk(command: click.Command, path: str = "cachebridge"):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_every_option_and_argument_has_help() -> None:
    missing = []
    commands = list(_walk(cli))
    assert {"cachebridge endpoints", "cachebridge sandbox up", "cachebridge drill"} <= {p for p, _ in commands}
    for path, command in commands:
        assert (command.help or "").strip(), f"{path} has no help"
        for param in command.params:
            text = getattr(param, "help", None)
            if isinstance(param, click.Argument):
                # click arguments carry no help of their own: the command's help must name them.
                text = param.human_readable_name if param.human_readable_name.lower() in (command.help or "").lower() else ""
            if not (text or "").strip():
                missing.append(f"{path} {param.opts}")
    assert missing == []


def test_source_without_role_is_documented() -> None:
    out = CliRunner().invoke(cli, ["sync", "--help"], terminal_width=200).output
    assert "without ?role: the primary" in " ".join(out.split())
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "`elasticache://RG` (no `?role`)" in readme


_BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Block())
sys.argv = ["cachebridge", *{argv!r}]
from cachebridge.cli import main
main()
"""


@pytest.mark.parametrize("module, argv", [
    ("dnslib", ["sandbox", "up", "--state-dir", "{tmp}"]),
    ("dnslib", ["drill", "--state-dir", "{tmp}"]),
    ("moto", ["sandbox", "status", "--state-dir", "{tmp}"]),
    ("redis", ["drill", "--stack-name", "orders-external", "--yes"]),
])
def test_missing_extra_is_one_line_exit_2(tmp_path: Path, module: str, argv: list[str]) -> None:
    argv = [a.format(tmp=tmp_path) for a in argv]
    done = subprocess.run([sys.executable, "-c", _BLOCK.format(module=module, argv=argv)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"missing: {module}" in lines[0] and "pip install 'cachebridge[cli,sandbox]'" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_the_extra_check_itself_sees_a_present_module() -> None:
    from cachebridge.sandbox.commands import require_extra

    require_extra("drill", ("redis", "dnslib"))  # installed here: no error


def test_drill_failover_after_beyond_duration_is_a_usage_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["drill", "--state-dir", str(tmp_path), "--duration", "5", "--failover-after", "6"])
    assert done.exit_code == 2
    assert "--failover-after" in done.output and "not below --duration (5)" in done.output


def test_drill_short_duration_without_failover_after_is_accepted(tmp_path: Path) -> None:
    # Fails later, for want of a sandbox, not on the option check.
    done = CliRunner().invoke(cli, ["drill", "--state-dir", str(tmp_path), "--duration", "5"])
    assert done.exit_code == 1
    assert "no sandbox is running" in done.output


def test_plot_labels_of_close_milestones_do_not_overlap() -> None:
    marks = [(0.0, "failover"), (0.68, "DNS flip"), (1.18, "notification"), (1.245, "registered"), (1.245, "retargeted"), (None, "x")]
    placed = label_positions(marks, span=20.0)
    assert [label for _, label, _ in placed] == ["failover", "DNS flip", "notification", "registered / retargeted"]
    for i, (x1, _, y1) in enumerate(placed):
        for x2, _, y2 in placed[i + 1:]:
            if x2 - x1 < 0.03 * 20.0:
                assert y1 != y2, placed


def test_plot_draws_close_milestones(tmp_path: Path) -> None:
    from cachebridge.drill import DrillResult, Op, Sample, plot

    t0 = 1000.0
    ops = [Op(t0 - 1 + i * 0.05, "write", f"k{i}", "readonly" if 20 <= i < 40 else "ok") for i in range(120)]
    samples = [Sample(t0 + 0.1, frozenset({"10.0.0.1:6379"}), {"10.0.0.1:6379": "healthy"}),
               Sample(t0 + 1.6, frozenset({"10.0.0.2:6379"}), {"10.0.0.1:6379": "draining", "10.0.0.2:6379": "initial"})]
    events = [{"t": t0 + 1.04, "kind": "dns.flipped"}, {"t": t0 + 1.54, "kind": "notification.sent"}]
    result = DrillResult("planned", t0 - 1, t0, t0 + 5, ops, samples, "10.0.0.1:6379", "10.0.0.2:6379", 5.0, [], [], events)
    out = tmp_path / "timeline.png"
    plot(result, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
