"""Docs stay honest (as sqlite-utils' tests/test_docs.py does).

* every CLI command, subcommands included, has help text and a section in
  docs/cli.md that mentions each of its options;
* the tour in docs/cli.md runs, line by line, with the installed script;
* every python block of docs/api.md runs, in order, and each
  ``print(...)  # expected`` prints what the comment says.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cas.cli import cli

DOCS = Path(__file__).resolve().parent.parent / "docs"
CLI_MD = DOCS / "cli.md"
API_MD = DOCS / "api.md"


def all_commands(group: click.Group = cli, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        found.append((path, cmd))
        if isinstance(cmd, click.Group):
            found.extend(all_commands(cmd, path + " "))
    return found


COMMANDS = all_commands()


def cli_sections() -> dict[str, str]:
    """``### `cas X``` heading -> the text of that section."""
    text = CLI_MD.read_text()
    parts = re.split(r"^### `cas ([a-z][a-z -]*)`\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_core_commands_exist():
    names = {path for path, _ in COMMANDS}
    core = {"init", "put", "get", "cat", "ls", "log", "show", "alias", "rm", "verify", "gc", "stats", "reindex"}
    assert core <= names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_help(path, command):
    assert (command.help or "").strip(), f"cas {path} has no help text"
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and path.split()[-1] in result.output


@pytest.mark.parametrize("path,command", [("", cli), *COMMANDS], ids=["cas", *(p for p, _ in COMMANDS)])
def test_every_help_ends_with_two_or_three_examples(path, command):
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    text = result.output.rstrip()
    help_part = text.split("Options:", 1)[0].rstrip()
    assert "Examples:" in help_part, f"cas {path} --help has no examples"
    examples = [line.strip() for line in help_part.rsplit("Examples:", 1)[1].splitlines() if line.strip()]
    assert 2 <= len(examples) <= 3, examples
    assert all("cas " in e for e in examples), examples


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_is_documented_with_its_options(path, command):
    sections = cli_sections()
    assert path in sections, f"docs/cli.md has no '### `cas {path}`' section"
    section = sections[path]
    for param in command.params:
        if isinstance(param, click.Option):
            flag = max(param.opts, key=len)  # the long form
            assert flag in section, f"docs/cli.md: `cas {path}` does not mention {flag}"


def test_every_documented_command_exists():
    names = {path for path, _ in COMMANDS}
    assert set(cli_sections()) <= names


def test_global_options_are_documented():
    text = CLI_MD.read_text()
    for param in cli.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            assert max(param.opts, key=len) in text
    assert "CAS_STORE" in text


def tour_commands() -> list[str]:
    text = CLI_MD.read_text()
    tour = text.split("## A tour", 1)[1]
    block = re.search(r"```console\n(.*?)```", tour, re.S).group(1)
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


def test_cli_tour_runs(tmp_path):
    commands = tour_commands()
    assert len(commands) > 10
    bindir = os.path.dirname(sys.executable)  # the installed `cas` script lives next to python
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    env.pop("CAS_STORE", None)
    script = "set -euo pipefail\n" + "\n".join(f"echo '>>> {i}'\n{cmd}" for i, cmd in enumerate(commands))
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "restored" / "weights.bin").read_bytes() == b"weights"
    assert '"deleted": true' in proc.stdout  # the last command: log --all --json after reindex


# -- every console block of docs/cli.md, and README's blocks, top to bottom -----------------

README = DOCS.parent / "README.md"
_ERROR_OUTPUT = ("cas: error:", '{"error"')


def console_steps(text: str) -> list[tuple[str, bool]]:
    """(command, expected to fail) for every ``$`` line of every console block, in
    order; a command whose shown output starts with an error must fail."""
    steps: list[tuple[str, bool]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                shown = lines[i + 1] if i + 1 < len(lines) else ""
                steps.append((line[2:], shown.startswith(_ERROR_OUTPUT)))
    return steps


def shell_script(steps: list[tuple[str, bool]]) -> str:
    out = ["set -euo pipefail"]
    for i, (cmd, fails) in enumerate(steps):
        out.append(f"echo '>>> {i}: '{_quote(cmd)}")
        if fails:
            out.append(f"if ( {cmd} ) 2> err.txt; then echo 'step {i} should have failed'; exit 1; fi")
            out.append("head -c 1 err.txt | grep -q . && cat err.txt >&2 && test $(wc -l < err.txt) -eq 1")
        else:
            out.append(cmd)
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def run_in_fresh_directory(script: str, cwd: Path) -> subprocess.CompletedProcess:
    bindir = os.path.dirname(sys.executable)  # the installed `cas` script lives next to python
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    for var in ("CAS_STORE", "CAS_DEBUG", "CAS_CONFIG"):
        env.pop(var, None)
    env["XDG_CONFIG_HOME"] = str(cwd / ".config")  # a user config of its own, never the real one
    env["CAS_CEILING_DIRECTORIES"] = str(cwd.parent)  # no store above the fresh directory
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_every_cli_md_example_runs_top_to_bottom(tmp_path):
    steps = console_steps(CLI_MD.read_text())
    assert len(steps) > 30 and any(fails for _, fails in steps)
    proc = run_in_fresh_directory(shell_script(steps), tmp_path)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "deploy" / "model" / "weights.bin").read_bytes() == b"weights"


def readme_block(heading: str, lang: str) -> str:
    section = README.read_text().split(heading, 1)[1]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_readme_command_line_block_runs_in_a_fresh_directory(tmp_path):
    block = readme_block("## The command line", "bash")
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) >= 12
    proc = run_in_fresh_directory(shell_script([(line, False) for line in lines]), tmp_path)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert (tmp_path / "out" / "model").read_bytes() == b"weights v1"


def test_readme_python_tour_runs_in_a_fresh_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAS_STORE", raising=False)
    namespace: dict = {"__name__": "readme"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(readme_block("## A short tour of the Python API", "python"), "README.md", "exec"), namespace)
    namespace["store"].close()


# -- docs/api.md ------------------------------------------------------------------------

PRINT_CHECK = re.compile(r"^(\s*)print\((.*)\)\s+#\s+(.+)$")


def _expect(expected: str, *values: object) -> None:
    got = " ".join(str(v) for v in values)
    if expected.endswith("..."):
        assert got.startswith(expected[:-3].rstrip()), (got, expected)
    else:
        assert got == expected, (got, expected)


def api_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", API_MD.read_text(), re.S)
    out = []
    for block in blocks:
        lines = []
        for line in block.splitlines():
            m = PRINT_CHECK.match(line)
            lines.append(f"{m.group(1)}__expect({m.group(3).strip()!r}, {m.group(2)})" if m else line)
        out.append("\n".join(lines) + "\n")
    return out


def test_api_examples_run_and_print_what_they_say(tmp_path, monkeypatch):
    blocks = api_blocks()
    assert len(blocks) > 10
    assert sum(b.count("__expect(") for b in blocks) >= 8, "the print checks were not found"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__expect": _expect, "__name__": "api_md"}
    with contextlib.redirect_stdout(io.StringIO()):
        for i, block in enumerate(blocks):
            exec(compile(block, f"docs/api.md block {i}", "exec"), namespace)
    namespace["store"].close()


def test_api_md_documents_the_store_methods():
    text = API_MD.read_text()
    for method in ("open_store", "save", "get_artifact_version", "list_versions", "list_artifacts", "set_alias",
                   "delete_version", "verify", "gc", "stats", "reindex", "refresh", "read_bytes", "open", "download"):
        assert f"{method}(" in text, method


@pytest.mark.parametrize("page", [CLI_MD, API_MD], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


# -- docstrings: every public class, method and function states its contract ------------


def _public_api() -> list[tuple[str, object]]:
    import inspect

    import cas
    import cas.store.config
    import cas.store.diff
    import cas.store.retention
    import cas.store.sync

    found: list[tuple[str, object]] = []
    for name in cas.__all__:
        obj = getattr(cas, name)
        if name.startswith("__") or inspect.ismodule(obj):
            continue
        found.append((name, obj))
        if inspect.isclass(obj):
            # the class's own members and those of cas classes it inherits (Store's mixins)
            members = {k: v for klass in reversed(obj.__mro__) if klass.__module__.startswith("cas.") for k, v in vars(klass).items()}
            for member, value in members.items():
                target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                if not member.startswith("_") and (callable(target) or isinstance(value, property)):
                    found.append((f"{name}.{member}", target))
    for module in (cas.store.sync, cas.store.diff, cas.store.retention, cas.store.config):
        found += [(f"{module.__name__}.{n}", getattr(module, n)) for n in module.__all__ if callable(getattr(module, n))]
    return found


def test_every_public_name_has_a_docstring():
    missing = [name for name, obj in _public_api() if not (getattr(obj, "__doc__", None) or "").strip()]
    assert not missing, f"no docstring: {missing}"
    assert len(_public_api()) > 80


def test_the_api_reference_names_only_what_exists():
    import importlib

    text = (DOCS / "reference" / "api.md").read_text()
    targets = re.findall(r"^::: ([\w.]+)", text, re.M)
    assert "cas.Store" in targets and len(targets) > 10
    for target in targets:
        module, _, attr = target.rpartition(".")
        try:
            importlib.import_module(target)
        except ImportError:
            assert hasattr(importlib.import_module(module), attr), target
