"""The ``cas`` command: every core command through click's CliRunner, plus real
subprocess runs of the installed console script to prove errors are one line
and never a traceback."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

import cas
from cas.cli import EXIT_ERROR, EXIT_VERIFY_FAILED, cli
from cas.core.format import FORMAT_FILE
from cas.storage.blobs import blob_path


@pytest.fixture
def store_dir(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def run(store_dir):
    """Invoke the CLI in-process on the test's store; returns click's Result."""
    runner = CliRunner()

    def _run(*args: str, input: bytes | str | None = None, store: bool = True):
        argv = (["--store", str(store_dir)] if store else []) + list(args)
        return runner.invoke(cli, argv, input=input, catch_exceptions=False)

    return _run


def ok(result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return result.stdout


def as_json(result):
    return json.loads(ok(result))


def one_line_error(result, code: int = EXIT_ERROR) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    err = result.stderr
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert "Traceback" not in err
    assert err.startswith("cas: error: ")
    return err


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    f = tmp_path / "model.bin"
    f.write_bytes(b"model bytes")
    d = tmp_path / "dataset"
    (d / "parts").mkdir(parents=True)
    (d / "parts" / "0.csv").write_text("a,b\n1,2\n")
    (d / "README").write_text("data\n")
    return {"file": f, "dir": d}


class TestCommands:
    def test_init(self, run, store_dir):
        data = as_json(run("init", "--json"))
        assert (store_dir / FORMAT_FILE).exists()
        assert data["store_id"] == json.loads((store_dir / FORMAT_FILE).read_text())["store_id"]
        # again: nothing changes
        assert as_json(run("init", "--json"))["store_id"] == data["store_id"]
        assert "already exists" in ok(run("init"))  # issue 12 item 8: says so, changes nothing

    @pytest.mark.parametrize("asked,made", [((), 2), (("--format", "1"), 1), (("--format", "2"), 2)])
    def test_init_makes_format_2_unless_asked(self, run, store_dir, monkeypatch, asked, made):
        monkeypatch.delenv("CAS_NEW_STORE_FORMAT", raising=False)
        assert as_json(run("init", *asked, "--json"))["format"] == made
        assert json.loads((store_dir / FORMAT_FILE).read_text())["format"] == made

    def test_put_and_get(self, run, files, tmp_path):
        out = as_json(run("put", str(files["file"]), "p/train/model", "--alias", "production", "--meta", "acc=0.9", "--json"))
        assert out["ref"] == "p/train/model@1"
        assert out["kind"] == "blob" and out["size"] == len(b"model bytes")
        assert out["metadata"] == {"acc": "0.9"}
        assert out["new_bytes"] == len(b"model bytes")
        again = as_json(run("put", str(files["file"]), "p/train/model", "--json"))
        assert again["version"] == 2 and again["new_bytes"] == 0 and again["digest"] == out["digest"]
        text = ok(run("put", str(files["file"]), "p/train/model"))
        assert text.startswith("p/train/model@3 ") and "(0 B new)" in text

        dest = tmp_path / "got.bin"
        got = as_json(run("get", "p/train/model@production", str(dest), "--json"))
        assert got["version"] == 1 and Path(got["path"]) == dest
        assert dest.read_bytes() == b"model bytes"

    def test_get_into_the_current_directory(self, run, files, tmp_path, monkeypatch):
        run("put", str(files["file"]), "p/s/model.bin")
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        assert "p/s/model.bin@1 ->" in ok(run("get", "p/s/model.bin"))
        assert (work / "model.bin").read_bytes() == b"model bytes"

    def test_put_directory_and_show(self, run, files, tmp_path):
        out = as_json(run("put", str(files["dir"]), "p/prep/data", "--json"))
        assert out["kind"] == "tree"
        shown = as_json(run("show", "p/prep/data", "--json"))
        assert [f["path"] for f in shown["files"]] == ["README", "parts/0.csv"]
        assert all(f["digest"].startswith("blake3:") for f in shown["files"])
        text = ok(run("show", "p/prep/data@1"))
        assert "kind: tree" in text and "parts/0.csv" in text
        dest = tmp_path / "restored"
        run("get", "p/prep/data", str(dest))
        assert (dest / "parts" / "0.csv").read_text() == "a,b\n1,2\n"

    def test_put_from_stdin(self, run):
        out = as_json(run("put", "-", "p/s/stdin", "--json", input=b"piped \x00 bytes"))
        assert out["size"] == len(b"piped \x00 bytes")
        assert run("cat", "p/s/stdin").stdout_bytes == b"piped \x00 bytes"

    def test_cat(self, run, files):
        run("put", str(files["file"]), "p/s/f")
        run("put", str(files["dir"]), "p/s/d")
        assert run("cat", "p/s/f@1").stdout_bytes == b"model bytes"
        assert run("cat", "p/s/d", "parts/0.csv").stdout_bytes == b"a,b\n1,2\n"
        one_line_error(run("cat", "p/s/d"))  # a directory needs a path
        one_line_error(run("cat", "p/s/d", "nope.txt"))
        one_line_error(run("cat", "p/s/d", "../etc/passwd"))

    def test_ls(self, run, files):
        run("init")
        assert as_json(run("ls", "--json")) == []
        assert "(no artifacts)" in ok(run("ls"))
        run("put", str(files["file"]), "a/s/x")
        run("put", str(files["file"]), "b/s/y")
        run("put", str(files["file"]), "b/s/y")
        rows = as_json(run("ls", "--json"))
        assert [(r["name"], r["version"]) for r in rows] == [("a/s/x", 1), ("b/s/y", 2)]
        assert [r["name"] for r in as_json(run("ls", "b/", "--json"))] == ["b/s/y"]
        assert "b/s/y  v2" in ok(run("ls"))

    def test_log_alias_rm(self, run, files):
        for _ in range(3):
            run("put", str(files["file"]), "p/s/m")
        assert as_json(run("alias", "p/s/m@2", "production", "--json")) == {"name": "p/s/m", "alias": "production", "version": 2}
        assert "p/s/m@production -> 2" in ok(run("alias", "p/s/m@2", "production"))
        rows = as_json(run("log", "p/s/m", "--json"))
        assert [r["version"] for r in rows] == [3, 2, 1]  # newest first
        assert rows[1]["aliases"] == ["production"]
        assert "(production)" in ok(run("log", "p/s/m"))
        assert as_json(run("rm", "p/s/m@3", "--json")) == {"name": "p/s/m", "version": 3, "deleted": True}
        assert [r["version"] for r in as_json(run("log", "p/s/m", "--json"))] == [2, 1]
        rows = as_json(run("log", "p/s/m", "--all", "--json"))
        assert [(r["version"], r["deleted"]) for r in rows] == [(3, True), (2, False), (1, False)]
        assert "deleted" in ok(run("log", "p/s/m", "--all"))
        one_line_error(run("show", "p/s/m@3"))
        # rm wants an explicit version
        one_line_error(run("rm", "p/s/m"), code=2)

    def test_verify(self, run, files, store_dir):
        run("put", str(files["file"]), "p/s/f")
        assert as_json(run("verify", "--json"))["ok"] is True
        assert "ok" in ok(run("verify", "--deep"))
        digest = as_json(run("show", "p/s/f", "--json"))["digest"].split(":")[1]
        path = store_dir / blob_path(digest)
        path.chmod(0o644)
        path.write_bytes(b"model bytez")  # same size: only --deep sees it
        assert as_json(run("verify", "--json"))["ok"] is True
        result = run("verify", "--deep", "--json")
        assert result.exit_code == EXIT_VERIFY_FAILED
        assert json.loads(result.stdout)["corrupt"] == [digest]
        result = run("verify", "--deep")
        assert result.exit_code == EXIT_VERIFY_FAILED and f"corrupt  {digest}" in result.stdout
        # reading it is refused with one line
        err = one_line_error(run("cat", "p/s/f"))
        assert "integrity error" in err

    def test_gc(self, run, files):
        run("put", str(files["file"]), "p/s/f")
        run("put", "-", "p/s/g", input=b"to be deleted")
        run("rm", "p/s/g@1")
        dry = as_json(run("gc", "--grace", "0", "--dry-run", "--json"))
        assert dry == {"removed": 1, "removed_bytes": len(b"to be deleted"), "kept": dry["kept"], "dry_run": True,
                       "blobs_counted": "stored"}
        assert as_json(run("gc", "--grace", "1h", "--json"))["removed"] == 0  # too young
        assert "removed 1 blobs" in ok(run("gc", "--grace", "0s"))
        assert as_json(run("gc", "--grace", "0", "--json"))["removed"] == 0
        assert as_json(run("verify", "--deep", "--json"))["ok"]
        assert run("cat", "p/s/f").stdout_bytes == b"model bytes"

    @pytest.mark.parametrize("grace", ["30", "30s", "15m", "2h", "7d", "1w", "1.5h"])
    def test_gc_grace_units(self, run, grace):
        run("init")
        ok(run("gc", "--grace", grace, "--dry-run"))

    @pytest.mark.parametrize("grace", ["soon", "-1h", "1y", "", "h"])
    def test_gc_bad_grace(self, run, grace):
        run("init")
        one_line_error(run("gc", "--grace", grace), code=2)

    def test_stats(self, run, files):
        run("put", str(files["file"]), "p/s/a")
        run("put", str(files["file"]), "p/s/b")
        data = as_json(run("stats", "--json"))
        size = len(b"model bytes")
        assert data == {"artifacts": 2, "versions": 2, "blobs": 1, "logical_bytes": 2 * size,
                        "stored_bytes": size, "dedupe_ratio": 2.0, "blobs_counted": "content"}
        assert "dedupe 2.00x" in ok(run("stats"))

    def test_reindex_after_the_index_is_deleted(self, run, files, store_dir):
        run("put", str(files["file"]), "p/s/a", "--alias", "production")
        run("put", str(files["dir"]), "p/s/b")
        run("rm", "p/s/a@1")
        before = {cmd: ok(run(*cmd.split(), "--json")) for cmd in ("ls", "log p/s/a --all", "show p/s/b", "stats")}
        for p in store_dir.glob("index.sqlite*"):
            p.unlink()
        packs = list((store_dir / "refs" / "packs").glob("*"))  # format 2: a tree's small files are packed
        assert as_json(run("reindex", "--json"))["refs"] == 4 + len(packs)
        after = {cmd: ok(run(*cmd.split(), "--json")) for cmd in before}
        assert after == before

    def test_refresh(self, run, files):
        run("init")
        assert as_json(run("refresh", "--json")) == {"applied": 0}

    def test_store_from_the_environment(self, files, store_dir, monkeypatch):
        monkeypatch.setenv("CAS_STORE", str(store_dir))
        runner = CliRunner()
        assert runner.invoke(cli, ["put", str(files["file"]), "p/s/env"]).exit_code == 0
        assert (store_dir / FORMAT_FILE).exists()
        assert cas.open_store(str(store_dir)).get_artifact_version("p/s/env").read_bytes() == b"model bytes"

    def test_version(self, run):
        assert cas.__version__ in ok(run("--version", store=False))


class TestErrors:
    def test_no_store(self, run):
        err = one_line_error(run("ls"))
        assert "no cas store" in err and "cas init" in err

    @pytest.mark.parametrize("name", ["../x/y", "p/s", "p/s/a b", "/abs/p/s", "p\\s\\a", "p/s/" + "x" * 200])
    def test_bad_names(self, run, files, store_dir, name):
        run("init")
        before = sorted(p.name for p in store_dir.rglob("*"))
        err = one_line_error(run("put", str(files["file"]), name))
        assert "invalid" in err
        assert sorted(p.name for p in store_dir.rglob("*") if "index.sqlite" not in p.name) == [
            n for n in before if "index.sqlite" not in n
        ]
        one_line_error(run("show", name))
        one_line_error(run("log", name))

    def test_control_characters_stay_on_one_line(self, run):
        run("init")
        err = one_line_error(run("show", "p/s/a\nb"))
        assert "\\n" in err

    @pytest.mark.parametrize("ref", ["p/s/a@99", "p/s/a@staging", "p/s/nope", "p/s/a@0", "p/s/a@1@2"])
    def test_unknown_versions(self, run, files, ref):
        run("put", str(files["file"]), "p/s/a")
        one_line_error(run("show", ref))
        one_line_error(run("get", ref))
        one_line_error(run("cat", ref))

    def test_bad_alias(self, run, files):
        run("put", str(files["file"]), "p/s/a")
        assert "latest" in one_line_error(run("alias", "p/s/a@1", "latest"))
        one_line_error(run("alias", "p/s/a@1", "1st"))
        one_line_error(run("put", str(files["file"]), "p/s/a", "--alias", "bad/alias"))

    def test_missing_file(self, run, tmp_path):
        err = one_line_error(run("put", str(tmp_path / "nope"), "p/s/a"))
        assert "no such file" in err

    def test_bad_meta(self, run, files):
        one_line_error(run("put", str(files["file"]), "p/s/a", "--meta", "novalue"), code=2)

    def test_newer_format(self, run, files, store_dir):
        run("put", str(files["file"]), "p/s/a")
        (store_dir / FORMAT_FILE).write_text('{"format": 99, "hash": "blake3", "store_id": "x"}')
        for cmd in (["ls"], ["show", "p/s/a"], ["put", str(files["file"]), "p/s/a"], ["verify"], ["gc"], ["reindex"]):
            err = one_line_error(run(*cmd))
            assert "format 99" in err

    def test_usage_errors_are_one_line(self, run):
        for args in (["put"], ["nosuchcommand"], ["ls", "--bogus"], ["--bogus"]):
            result = run(*args)
            one_line_error(result, code=2)
            assert "--help" in result.stderr

    def test_unreadable_index(self, run, files, store_dir):
        run("put", str(files["file"]), "p/s/a")
        for p in store_dir.glob("index.sqlite*"):
            p.unlink()
        (store_dir / "index.sqlite").write_bytes(b"this is not a database" * 100)
        err = one_line_error(run("ls"))
        assert "index" in err and "delete it" in err

    def test_internal_errors_are_one_line_too(self, run, files, monkeypatch):
        run("put", str(files["file"]), "p/s/a")

        def broken(self, *a, **k):
            raise ZeroDivisionError("a bug")

        monkeypatch.setattr(cas.Store, "stats", broken)
        result = run("stats")
        assert result.exit_code == 3
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "internal error: ZeroDivisionError: a bug" in result.stderr


COMMANDS = ["init", "put", "get", "cat", "ls", "log", "show", "alias", "rm", "verify", "gc", "stats", "reindex", "refresh"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_everywhere(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert f"Usage: cli {command}" in result.stdout or f"Usage: cas {command}" in result.stdout
    assert len(cli.commands[command].help or "") > 10


QUERY_COMMANDS = [["init"], ["ls"], ["log", "p/s/a"], ["show", "p/s/a"], ["verify"], ["gc", "--dry-run"], ["stats"], ["reindex"],
                  ["refresh"], ["alias", "p/s/a@1", "prod"], ["get", "p/s/a", "{tmp}/out"], ["put", "{file}", "p/s/b"], ["rm", "p/s/a@1"]]


@pytest.mark.parametrize("args", QUERY_COMMANDS, ids=lambda a: a[0])
def test_json_everywhere(run, files, tmp_path, args):
    run("put", str(files["file"]), "p/s/a")
    argv = [a.format(tmp=tmp_path, file=files["file"]) for a in args]
    json.loads(ok(run(*argv, "--json")))


# -- the real console script ---------------------------------------------------------


def cas_command() -> list[str]:
    """The installed ``cas`` script next to this interpreter (tox and the venv put it there)."""
    script = shutil.which("cas", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "cas.cli"]


def sh(*args: str, store: Path, input: bytes | None = None, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, CAS_STORE=str(store))
    env.pop("CAS_DEBUG", None)
    return subprocess.run([*cas_command(), *args], input=input, capture_output=True, env=env, timeout=120, **kw)


class TestSubprocess:
    def test_round_trip(self, tmp_path, files):
        store = tmp_path / "s"
        assert sh("put", str(files["file"]), "p/s/a", store=store).returncode == 0
        r = sh("cat", "p/s/a@1", store=store)
        assert r.returncode == 0 and r.stdout == b"model bytes"
        data = json.loads(sh("log", "p/s/a", "--json", store=store).stdout)
        assert data[0]["ref"] == "p/s/a@1"

    def test_errors_are_one_line_without_traceback(self, tmp_path, files):
        store = tmp_path / "s"
        cases = [
            (["ls"], "no cas store"),  # before init
            (["put", str(files["file"]), "../../etc/passwd"], "invalid"),
            (["show", "p/s/missing"], "no artifact named"),
            (["show", "p/s/a@7"], "has no version 7"),
            (["get", "p/s/a\x01"], "invalid"),
            (["rm", "p/s/a"], "NAME@VERSION"),
            (["cat", "p/s/a@1"], "integrity error"),
            (["ls"], "format 99"),
        ]
        for i, (args, expected) in enumerate(cases):
            if i == 1:
                assert sh("put", str(files["file"]), "p/s/a", store=store).returncode == 0
            if args[0] == "cat":
                digest = json.loads(sh("show", "p/s/a", "--json", store=store).stdout)["digest"][7:]
                blob = store / blob_path(digest)
                blob.chmod(0o644)
                blob.write_bytes(b"tampered!!!")
            if expected == "format 99":
                (store / FORMAT_FILE).write_text('{"format": 99, "hash": "blake3"}')
            r = sh(*args, store=store)
            err = r.stderr.decode()
            assert r.returncode != 0, args
            assert "Traceback" not in err, err
            assert err.count("\n") == 1 and err.startswith("cas: error: "), err
            assert expected in err, (args, err)

    def test_broken_pipe_is_quiet(self, tmp_path):
        store = tmp_path / "s"
        sh("put", "-", "p/s/big", store=store, input=os.urandom(8 << 20))
        with subprocess.Popen(
            [*cas_command(), "cat", "p/s/big"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, CAS_STORE=str(store)),
        ) as proc:
            assert len(proc.stdout.read(10)) == 10
            proc.stdout.close()  # the reader leaves, like `| head`
            err = proc.stderr.read().decode()
            proc.wait(timeout=60)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert proc.returncode != 0

    def test_progress_bar_on_a_terminal(self, tmp_path):
        """A tty on stderr gets a tqdm bar; --json and pipes stay clean (checked above)."""
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(24 << 20))
        master, slave = pty.openpty()
        # a fresh pty is 0 columns wide, and tqdm draws nothing in 0 columns
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        env = dict(os.environ, CAS_STORE=str(tmp_path / "s"))
        with subprocess.Popen([*cas_command(), "put", str(src), "p/s/big"], stdout=subprocess.PIPE, stderr=slave, env=env) as proc:
            os.close(slave)
            seen = b""
            while True:
                ready, _, _ = select.select([master], [], [], 60)
                if not ready:
                    break
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                seen += chunk
            os.close(master)
            out = proc.stdout.read().decode()
            assert proc.wait(timeout=60) == 0
        assert "saving p/s/big" in seen.decode(errors="replace")
        assert out.startswith("p/s/big@1 ")


def in_pty(argv: list[str], env: dict[str, str], feed=None, timeout: float = 120) -> tuple[int, bytes, list[tuple[float, bytes]]]:
    """Run argv with stderr on a real pty (100 columns); ``feed(stdin)`` writes its
    input from a thread.  Returns (exit code, stdout, [(seconds, bytes drawn)])."""
    import threading
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    drawn: list[tuple[float, bytes]] = []
    with subprocess.Popen(argv, stdin=subprocess.PIPE if feed else subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=slave, env=env) as proc:
        os.close(slave)
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
        reader.start()
        if feed:
            writer = threading.Thread(target=lambda: (feed(proc.stdin), proc.stdin.close()), daemon=True)
            writer.start()
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            ready, _, _ = select.select([master], [], [], 5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            drawn.append((time.monotonic() - start, chunk))
        os.close(master)
        code = proc.wait(timeout=60)
        reader.join(60)
    return code, b"".join(out), drawn


class TestProgress:
    """Issue 12 item 1: bars move while bytes flow, in IEC units, on a terminal only."""

    def test_a_slow_stream_shows_live_bytes_every_half_second(self, tmp_path):
        import re
        import time

        def feed(stdin):
            for _ in range(12):  # 12 x 4 MiB over ~3 s
                stdin.write(os.urandom(4 << 20))
                stdin.flush()
                time.sleep(0.25)

        env = dict(os.environ, CAS_STORE=str(tmp_path / "s"))
        code, out, drawn = in_pty([*cas_command(), "put", "-", "p/s/stream"], env, feed)
        assert code == 0 and out.startswith(b"p/s/stream@1 "), out
        text = b"".join(c for _, c in drawn).decode(errors="replace")
        counts = [float(m) for m in re.findall(r"saving p/s/stream: ([\d.]+) MiB", text)]
        assert len(set(counts)) >= 4, text  # many distinct byte counts, not 0 then done
        assert counts == sorted(counts)
        assert "MB" not in text.replace("MiB", "") and "48.0 MiB" in out.decode()  # one unit system: IEC
        # updates arrive while the stream flows: no gap over 0.5 s (plus the feeder's pace)
        times = [t for t, c in drawn if b"MiB" in c]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert max(gaps) < 0.75, gaps

    @pytest.mark.parametrize(
        "argv,desc",
        [
            (["get", "p/s/big", "{tmp}/out.bin"], "getting p/s/big@1"),
            (["get", "p/s/tree", "{tmp}/tree"], "getting p/s/tree@1"),
            (["cat", "p/s/big"], "reading p/s/big@1"),
            (["verify", "--deep"], "verifying"),
            (["reindex"], "reindexing"),
            (["sync", "{store}", "{tmp}/copy"], "syncing"),
        ],
        ids=["get", "get-tree", "cat", "verify-deep", "reindex", "sync"],
    )
    def test_every_long_command_draws_a_bar(self, tmp_path, argv, desc):
        store = tmp_path / "s"
        (tmp_path / "d").mkdir()
        for i in range(3):
            (tmp_path / "d" / f"{i}.bin").write_bytes(os.urandom(3 << 20))
        sh("put", "-", "p/s/big", store=store, input=os.urandom(12 << 20))
        sh("put", str(tmp_path / "d"), "p/s/tree", store=store)
        env = dict(os.environ, CAS_STORE=str(store))
        args = [a.replace("{tmp}", str(tmp_path)).replace("{store}", str(store)) for a in argv]
        code, _, drawn = in_pty([*cas_command(), "--progress", *args], env)
        text = b"".join(c for _, c in drawn).decode(errors="replace")
        assert code == 0, text
        assert desc in text, text
        if argv[0] == "get" and "tree" in argv[1]:
            assert "/3 files" in text, text
        if argv[0] != "reindex":
            assert "MiB" in text, text

    def test_quiet_draws_nothing_on_a_terminal(self, tmp_path):
        env = dict(os.environ, CAS_STORE=str(tmp_path / "s"))
        code, out, drawn = in_pty([*cas_command(), "--quiet", "put", "-", "p/s/q"], env,
                                  lambda stdin: stdin.write(os.urandom(8 << 20)))
        assert code == 0 and out.startswith(b"p/s/q@1 ")
        assert b"".join(c for _, c in drawn) == b""

    def test_nothing_on_a_pipe_unless_asked(self, tmp_path, files):
        store = tmp_path / "s"
        plain = sh("put", str(files["file"]), "p/s/a", store=store)
        assert plain.returncode == 0 and plain.stderr == b""
        asked = sh("--progress", "get", "p/s/a", str(tmp_path / "got"), store=store)
        assert asked.returncode == 0 and b"getting p/s/a@1" in asked.stderr
        assert sh("--progress", "--quiet", "get", "p/s/a", str(tmp_path / "got2"), store=store).stderr == b""


class TestUserFilesAreSafe:
    """Issue 9 case 8: no command loses or clobbers a user's files, none saves the store
    into itself, and a failed command leaves no store behind."""

    def test_trailing_slash_means_into_a_directory(self, run, files, tmp_path):
        run("put", str(files["file"]), "p/s/model.bin")
        out = tmp_path / "out"
        got = as_json(run("get", "p/s/model.bin", f"{out}/", "--json"))
        assert Path(got["path"]) == out / "model.bin"
        assert (out / "model.bin").read_bytes() == b"model bytes"

    def test_an_existing_file_is_never_overwritten_without_force(self, run, files, tmp_path):
        run("put", str(files["file"]), "p/s/model.bin")
        run("put", "-", "p/s/model.bin", input=b"second")
        out = tmp_path / "out"
        ok(run("get", "p/s/model.bin@1", f"{out}/"))
        err = one_line_error(run("get", "p/s/model.bin@2", f"{out}/"))
        assert "already exists" in err and "--force" in err
        assert (out / "model.bin").read_bytes() == b"model bytes"
        one_line_error(run("get", "p/s/model.bin@2", str(out / "model.bin")))
        assert (out / "model.bin").read_bytes() == b"model bytes"
        ok(run("get", "p/s/model.bin@2", str(out / "model.bin"), "--force"))
        assert (out / "model.bin").read_bytes() == b"second"

    def test_a_tree_into_an_existing_directory_goes_inside_it(self, run, files, tmp_path):
        run("put", str(files["dir"]), "p/s/data")
        dest = tmp_path / "existing"
        dest.mkdir()
        (dest / "mine.txt").write_text("keep me")
        got = as_json(run("get", "p/s/data", str(dest), "--json"))
        assert Path(got["path"]) == dest / "data"
        assert (dest / "data" / "parts" / "0.csv").read_text() == "a,b\n1,2\n"
        assert (dest / "mine.txt").read_text() == "keep me"
        # again: the tree is already there, so it is not touched without --force
        (dest / "data" / "README").write_text("edited")
        one_line_error(run("get", "p/s/data", str(dest)))
        assert (dest / "data" / "README").read_text() == "edited"
        ok(run("get", "p/s/data", str(dest), "--force"))
        assert (dest / "data" / "README").read_text() == "data\n"
        assert sorted(p.name for p in dest.iterdir()) == ["data", "mine.txt"]  # no scratch left behind

    def test_a_tree_never_replaces_a_file_and_a_file_never_a_directory(self, run, files, tmp_path):
        run("put", str(files["dir"]), "p/s/data")
        run("put", str(files["file"]), "p/s/model")
        (tmp_path / "data").write_text("a file")
        one_line_error(run("get", "p/s/data", str(tmp_path / "data")))
        assert (tmp_path / "data").read_text() == "a file"
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "x").write_text("x")
        err = one_line_error(run("get", "p/s/model", str(tmp_path), "--force"))  # into tmp_path: ./model
        assert "is a directory" in err
        assert (tmp_path / "model" / "x").read_text() == "x"

    def test_put_dot_beside_the_store_leaves_the_store_out(self, files, tmp_path, monkeypatch):
        work = tmp_path / "work"
        work.mkdir()
        (work / "train.csv").write_text("x\n1\n")
        monkeypatch.chdir(work)
        monkeypatch.delenv("CAS_STORE", raising=False)
        runner = CliRunner()
        ok(runner.invoke(cli, ["put", "train.csv", "p/s/first"]))
        assert (work / ".cas" / "index.sqlite").exists()
        shown = as_json(runner.invoke(cli, ["put", ".", "p/s/dir", "--json"]))
        listed = as_json(runner.invoke(cli, ["show", "p/s/dir", "--json"]))
        assert [f["path"] for f in listed["files"]] == ["train.csv"], listed["files"]
        assert shown["size"] == len("x\n1\n")

    def test_the_api_never_saves_a_store_into_itself(self, tmp_path):
        work = tmp_path / "work"
        (work / "sub").mkdir(parents=True)
        (work / "sub" / "a.txt").write_text("a")
        with cas.open_store(work / ".cas") as store:
            store.save(b"x", "p/s/x")
            v = store.save(work, "p/s/all")
            assert [p for p, _, _ in v.files()] == ["sub/a.txt"]
            # a store kept elsewhere, with its index inside the directory saved
            with cas.open_store(tmp_path / "other", index=str(work / "sub" / "idx.sqlite")) as other:
                other.save(b"y", "p/s/y")
                v = other.save(work / "sub", "p/s/sub")
                assert [p for p, _, _ in v.files()] == ["a.txt"]
            for inside in (work / ".cas", work / ".cas" / "blobs", work / ".cas" / "index.sqlite"):
                with pytest.raises(cas.errors.InvalidNameError, match="part of the store"):
                    store.save(inside, "p/s/bad")

    @pytest.mark.parametrize(
        "args",
        [
            ["put", "missing.bin", "p/s/a"],
            ["put", "{file}", "bad name"],
            ["put", "{file}", "p/s/a", "--alias", "1bad"],
            ["put", "{file}", "p/s/a", "--meta", "novalue"],
        ],
        ids=["missing-file", "bad-name", "bad-alias", "bad-meta"],
    )
    def test_a_failed_put_creates_no_store(self, args, files, tmp_path, monkeypatch):
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.chdir(work)
        monkeypatch.delenv("CAS_STORE", raising=False)
        argv = [a.replace("{file}", str(files["file"])) for a in args]
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code != 0
        assert list(work.iterdir()) == [], "a failed put left files behind"

    def test_a_failed_put_in_a_subprocess_creates_no_store(self, tmp_path):
        r = subprocess.run([*cas_command(), "put", "missing.bin", "p/s/a"], cwd=tmp_path, capture_output=True,
                           env={k: v for k, v in os.environ.items() if k != "CAS_STORE"}, timeout=120)
        assert r.returncode == 1 and r.stderr.decode().startswith("cas: error: ")
        assert list(tmp_path.iterdir()) == []


class TestScripts:
    """Issue 12 item 8: what a script relies on."""

    @pytest.mark.parametrize(
        "args,kind,code",
        [
            (["show", "p/s/missing", "--json"], "ArtifactNotFoundError", EXIT_ERROR),
            (["put", "{file}", "bad name", "--json"], "InvalidNameError", EXIT_ERROR),
            (["put", "{file}", "p/s/a", "--meta", "novalue", "--json"], "UsageError", 2),
            (["gc", "--grace", "soon", "--json"], "UsageError", 2),
            (["log", "p/s/a", "--nope", "--json"], "UsageError", 2),
            (["get", "p/s/a@9", "--json"], "VersionNotFoundError", EXIT_ERROR),
        ],
        ids=["not-found", "bad-name", "bad-meta", "bad-grace", "unknown-option", "no-version"],
    )
    def test_errors_under_json_are_json_on_stderr(self, run, files, args, kind, code):
        run("put", str(files["file"]), "p/s/a")
        result = run(*[a.replace("{file}", str(files["file"])) for a in args])
        assert result.exit_code == code, (result.stdout, result.stderr)
        assert result.stdout == ""
        err = json.loads(result.stderr)
        assert err["type"] == kind and err["exit_code"] == code and err["error"]
        assert result.stderr.count("\n") == 1

    def test_json_errors_in_a_subprocess(self, tmp_path):
        r = sh("ls", "--json", store=tmp_path / "none")
        assert r.returncode == EXIT_ERROR
        err = json.loads(r.stderr)
        assert err["type"] == "StoreNotFoundError" and "no cas store" in err["error"]
        plain = sh("ls", store=tmp_path / "none")
        assert plain.stderr.decode().startswith("cas: error: ")

    def test_init_on_an_existing_store_says_so_and_changes_nothing(self, run, files, store_dir):
        first = as_json(run("init", "--json"))
        assert first["created"] is True
        run("put", str(files["file"]), "p/s/a")
        before = {p: p.stat().st_mtime_ns for p in store_dir.rglob("*") if "index.sqlite" not in p.name}
        again = as_json(run("init", "--json"))
        assert again["created"] is False and again["store_id"] == first["store_id"]
        assert "already exists" in ok(run("init"))
        after = {p: p.stat().st_mtime_ns for p in store_dir.rglob("*") if "index.sqlite" not in p.name}
        assert after == before

    def test_sync_dry_run_reports_the_users_url(self, run, files, store_dir, tmp_path):
        run("put", str(files["file"]), "p/s/a")
        dst = tmp_path / "not-yet"
        data = as_json(run("sync", "--dry-run", "--json", str(store_dir), str(dst)))
        assert data["dst"] == "file://" + str(dst)
        assert not dst.exists()

    def test_blob_counts_agree_across_stats_verify_and_gc(self, run, files, store_dir):
        run("put", str(files["file"]), "p/s/a")
        run("put", str(files["file"]), "p/s/b")  # dedupe: one content blob
        run("put", str(files["dir"]), "p/s/tree")
        run("put", "-", "p/s/gone", input=b"to be deleted")
        run("rm", "p/s/gone@1")
        stats = as_json(run("stats", "--json"))
        verify = as_json(run("verify", "--json"))
        deep = as_json(run("verify", "--deep", "--json"))
        gc = as_json(run("gc", "--dry-run", "--grace", "0", "--json"))
        assert (stats["blobs_counted"], verify["blobs_counted"], deep["blobs_counted"], gc["blobs_counted"]) == (
            "content", "needed", "stored", "stored")
        stored = sum(1 for p in (store_dir / "blobs").rglob("*") if p.is_file())
        with cas.open_store(str(store_dir)) as store:  # format 2: a tree's small files are blobs in a pack
            stored += sum(len(store.index.pack_entries(pack)) for pack in store.index.known_packs())
        assert deep["checked"] == stored == gc["kept"] + gc["removed"]
        assert verify["checked"] == gc["kept"]  # gc keeps exactly what verify checks
        assert stats["blobs"] == 3  # model bytes, README, parts/0.csv
        assert gc["removed"] == 1


class TestDiffAndStatus:
    """Issue 12 items 2 and 3."""

    @pytest.fixture
    def two_trees(self, run, tmp_path):
        d = tmp_path / "data"
        d.mkdir()
        (d / "keep.csv").write_text("same\n")
        (d / "old.txt").write_text("old")
        (d / "model.bin").write_bytes(b"v1")
        run("put", str(d), "p/s/data", "--meta", "auc=0.8", "--meta", "gone=x")
        (d / "old.txt").unlink()
        (d / "new.txt").write_text("brand new")
        (d / "model.bin").write_bytes(b"v2 longer")
        run("put", str(d), "p/s/data", "--meta", "auc=0.9", "--meta", "extra=y")
        return d

    def test_diff_of_two_tree_versions(self, run, two_trees):
        d = as_json(run("diff", "p/s/data@1", "p/s/data@2", "--json"))
        assert d["same"] is False and d["kind"] == ["tree", "tree"]
        assert [(f["path"], f["size"]) for f in d["added"]] == [("new.txt", 9)]
        assert [(f["path"], f["size"]) for f in d["removed"]] == [("old.txt", 3)]
        assert [(f["path"], f["size"]) for f in d["changed"]] == [("model.bin", [2, 9])]
        assert d["unchanged"] == 1
        assert d["metadata"] == {"added": {"extra": "y"}, "removed": {"gone": "x"}, "changed": {"auc": ["0.8", "0.9"]}}
        text = ok(run("diff", "p/s/data@1", "p/s/data@2"))
        assert "+ new.txt  9 B" in text and "- old.txt  3 B" in text and "M model.bin  2 B -> 9 B" in text
        assert "1 added, 1 removed, 1 changed, 1 unchanged" in text

    def test_diff_reads_no_content_blob(self, run, two_trees, store_dir):
        shutil.rmtree(store_dir / "blobs")  # every blob gone: content, manifests, records
        d = as_json(run("diff", "p/s/data@1", "p/s/data@2", "--json"))
        assert [f["path"] for f in d["added"]] == ["new.txt"]

    def test_diff_of_blobs_and_of_a_version_and_a_local_path(self, run, files, two_trees, tmp_path):
        run("put", "-", "p/s/f", input=b"one")
        run("put", "-", "p/s/f", input=b"three")
        d = as_json(run("diff", "p/s/f@1", "p/s/f@2", "--json"))
        assert d["size"] == [3, 5] and d["digest"][0] != d["digest"][1] and "added" not in d
        assert as_json(run("diff", "p/s/f@1", "p/s/f@1", "--json"))["same"] is True
        assert "no differences" in ok(run("diff", "p/s/data@2", str(two_trees)))
        (two_trees / "keep.csv").write_text("edited\n")
        local = as_json(run("diff", "p/s/data@2", str(two_trees), "--json"))
        assert [f["path"] for f in local["changed"]] == ["keep.csv"] and "metadata" not in local

    def test_status(self, run, two_trees):
        assert ok(run("status", str(two_trees), "p/s/data")).startswith(f"{two_trees}: same as p/s/data@2")
        (two_trees / "extra.txt").write_text("x")
        st = as_json(run("status", str(two_trees), "p/s/data", "--json"))
        assert st["same"] is False and [f["path"] for f in st["added"]] == ["extra.txt"]
        assert "differs from p/s/data@2" in ok(run("status", str(two_trees), "p/s/data"))
        one_line_error(run("status", str(two_trees), "p/s/nothing"))

    def test_put_if_changed_creates_no_version_for_equal_content(self, run, files, store_dir):
        first = as_json(run("put", str(files["dir"]), "p/s/d", "--json"))
        again = as_json(run("put", str(files["dir"]), "p/s/d", "--if-changed", "--alias", "prod", "--json"))
        assert again["version"] == first["version"] == 1 and again["unchanged"] is True and again["new_bytes"] == 0
        assert "unchanged" in ok(run("put", str(files["dir"]), "p/s/d", "--if-changed"))
        assert [v["version"] for v in as_json(run("log", "p/s/d", "--json"))] == [1]
        assert "prod" in as_json(run("log", "p/s/d", "--json"))[0]["aliases"]  # aliases still move
        (files["dir"] / "README").write_text("changed\n")
        changed = as_json(run("put", str(files["dir"]), "p/s/d", "--if-changed", "--json"))
        assert changed["version"] == 2 and changed["unchanged"] is False
        # without the flag, equal content still makes a version (as before)
        assert as_json(run("put", str(files["dir"]), "p/s/d", "--json"))["version"] == 3
        assert as_json(run("put", "-", "p/s/s", "--if-changed", "--json", input=b"x"))["version"] == 1
        assert as_json(run("put", "-", "p/s/s", "--if-changed", "--json", input=b"x"))["unchanged"] is True

    def test_api_if_changed(self, tmp_path):
        with cas.open_store(tmp_path / "s") as store:
            v1 = store.save(b"x", "p/s/a")
            assert store.save(b"x", "p/s/a", if_changed=True).version == v1.version
            store.delete_version("p/s/a", 1)
            assert store.save(b"x", "p/s/a", if_changed=True).version == 2  # the latest live one is gone

    def test_diff_in_a_subprocess(self, tmp_path, files):
        store = tmp_path / "s"
        sh("put", str(files["dir"]), "p/s/d", store=store)
        (files["dir"] / "new").write_text("n")
        sh("put", str(files["dir"]), "p/s/d", store=store)
        r = sh("diff", "p/s/d@1", "p/s/d@2", "--json", store=store)
        assert r.returncode == 0 and [f["path"] for f in json.loads(r.stdout)["added"]] == ["new"]


class TestRetention:
    """Issue 12 item 4: cas rm --keep-last/--older-than/--keep-alias/--dry-run, cas alias --delete."""

    @pytest.fixture
    def five(self, run):
        for i in range(1, 6):
            run("put", "-", "p/s/a", input=f"a{i}".encode())
            run("put", "-", "p/s/b", input=f"b{i}".encode())
        run("put", "-", "q/s/c", input=b"other pipeline")
        run("alias", "p/s/a@2", "prod")

    def live(self, run, name):
        return [v["version"] for v in as_json(run("log", name, "--json"))]

    def test_keep_last_over_a_prefix_keeps_aliased_versions(self, run, five):
        dry = as_json(run("rm", "p/s/", "--keep-last", "2", "--dry-run", "--json"))
        assert dry == {"deleted": ["p/s/a@1", "p/s/a@3", "p/s/b@1", "p/s/b@2", "p/s/b@3"], "dry_run": True}
        assert self.live(run, "p/s/a") == [5, 4, 3, 2, 1]  # dry run: nothing deleted
        text = ok(run("rm", "p/s/", "--keep-last", "2"))
        assert text.splitlines()[0] == "deleted p/s/a@1"
        assert self.live(run, "p/s/a") == [5, 4, 2] and self.live(run, "p/s/b") == [5, 4]
        assert self.live(run, "q/s/c") == [1]  # outside the prefix

    def test_no_keep_alias_and_a_single_name(self, run, five):
        as_json(run("rm", "p/s/a", "--keep-last", "1", "--no-keep-alias", "--json"))
        assert self.live(run, "p/s/a") == [5] and self.live(run, "p/s/b") == [5, 4, 3, 2, 1]

    def test_older_than(self, run, five, store_dir):
        assert as_json(run("rm", "p/s/", "--older-than", "1h", "--json"))["deleted"] == []
        deleted = as_json(run("rm", "p/s/b", "--older-than", "0s", "--keep-last", "3", "--json"))["deleted"]
        assert deleted == ["p/s/b@1", "p/s/b@2"]  # kept if any rule keeps it

    def test_api_select_expired_by_age(self, tmp_path):
        from datetime import datetime, timedelta, timezone

        from cas.store.retention import select_expired

        with cas.open_store(tmp_path / "s") as store:
            for i in range(3):
                store.save(f"{i}".encode(), "p/s/x")
            later = datetime.now(timezone.utc) + timedelta(days=31)
            assert [v.version for v in select_expired(store, ["p/s/x"], older_than=30 * 86400, now=later)] == [1, 2, 3]
            assert select_expired(store, ["p/s/x"], older_than=30 * 86400) == []

    def test_bad_retention_requests_change_nothing(self, run, five):
        one_line_error(run("rm", "p/s/a"), code=2)  # no version, no rule
        one_line_error(run("rm", "p/s/a@1", "--keep-last", "1"), code=2)
        one_line_error(run("rm", "zz/", "--keep-last", "1"), code=2)
        one_line_error(run("rm", "p/s/", "--older-than", "soon"), code=2)
        one_line_error(run("rm", "p/s/", "--keep-last", "-1"), code=2)
        assert self.live(run, "p/s/a") == [5, 4, 3, 2, 1]

    def test_alias_delete(self, run, five, store_dir):
        assert "removed p/s/a@prod (was 2)" in ok(run("alias", "--delete", "p/s/a", "prod"))
        assert as_json(run("log", "p/s/a", "--json"))[3]["aliases"] == []
        one_line_error(run("show", "p/s/a@prod"))
        one_line_error(run("alias", "--delete", "p/s/a", "prod"))  # already gone
        one_line_error(run("alias", "--delete", "p/s/a", "latest"))
        # the removal is a record: a rebuilt index agrees, and the alias can come back
        for f in store_dir.glob("index.sqlite*"):
            f.unlink()
        ok(run("reindex"))
        one_line_error(run("show", "p/s/a@prod"))
        ok(run("alias", "p/s/a@4", "prod"))
        assert as_json(run("show", "p/s/a@prod", "--json"))["version"] == 4


class TestPartialGet:
    """Issue 12 item 5: one grammar, --path, for get and cat; download(paths=) in Python."""

    def test_get_parts_of_a_tree(self, run, files, tmp_path):
        run("put", str(files["dir"]), "p/s/data")
        dest = tmp_path / "part"
        got = as_json(run("get", "p/s/data", str(dest), "--path", "parts", "--json"))
        assert Path(got["path"]) == dest
        assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == ["parts/0.csv"]
        ok(run("get", "p/s/data", str(tmp_path / "one"), "--path", "README"))
        assert [p.name for p in (tmp_path / "one").iterdir()] == ["README"]

    def test_a_missing_path_writes_nothing(self, run, files, tmp_path):
        run("put", str(files["dir"]), "p/s/data")
        err = one_line_error(run("get", "p/s/data", str(tmp_path / "x"), "--path", "README", "--path", "nope"))
        assert "nope" in err and not (tmp_path / "x").exists()
        one_line_error(run("get", "p/s/data", str(tmp_path / "x"), "--path", "../etc"))
        run("put", str(files["file"]), "p/s/f")
        one_line_error(run("get", "p/s/f", str(tmp_path / "x"), "--path", "a"))
        assert not (tmp_path / "x").exists()

    def test_cat_takes_the_same_path_option(self, run, files):
        run("put", str(files["dir"]), "p/s/data")
        assert run("cat", "p/s/data", "--path", "parts/0.csv").stdout_bytes == b"a,b\n1,2\n"
        one_line_error(run("cat", "p/s/data", "README", "--path", "parts/0.csv"), code=2)

    def test_api_download_paths(self, tmp_path, files):
        with cas.open_store(tmp_path / "s") as store:
            v = store.save(files["dir"], "p/s/data")
            out = v.download(tmp_path / "out", paths=["parts/0.csv"])
            assert [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()] == ["parts/0.csv"]
            with pytest.raises(cas.errors.PathNotFoundError):
                v.download(tmp_path / "out2", paths=["missing"])
            assert not (tmp_path / "out2").exists()


class TestRemotesAndConfig:
    """Issue 12 item 6: TOML config with named remotes; the nearest .cas above the cwd."""

    @pytest.fixture
    def project(self, tmp_path, monkeypatch):
        root = tmp_path / "project"
        (root / "src" / "deep").mkdir(parents=True)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        monkeypatch.setenv("CAS_CEILING_DIRECTORIES", str(tmp_path))
        monkeypatch.delenv("CAS_STORE", raising=False)
        monkeypatch.delenv("CAS_CONFIG", raising=False)
        monkeypatch.chdir(root)
        ok(CliRunner().invoke(cli, ["init"]))
        return root

    def test_a_subdirectory_uses_the_nearest_store_above(self, project, monkeypatch):
        (project / "src" / "deep" / "f.txt").write_text("x")
        monkeypatch.chdir(project / "src" / "deep")
        ok(CliRunner().invoke(cli, ["put", "f.txt", "p/s/f"]))
        assert not (project / "src" / "deep" / ".cas").exists()
        monkeypatch.chdir(project)
        assert as_json(CliRunner().invoke(cli, ["ls", "--json"]))[0]["name"] == "p/s/f"
        # init is explicit, as git init is: it creates a store right here
        monkeypatch.chdir(project / "src")
        assert as_json(CliRunner().invoke(cli, ["init", "--json"]))["created"] is True
        assert (project / "src" / ".cas").is_dir()

    def test_remote_add_list_sync_and_store_by_name(self, project, tmp_path):
        runner = CliRunner()
        (project / "f.txt").write_text("data")
        ok(runner.invoke(cli, ["put", "f.txt", "p/s/f"]))
        team = tmp_path / "team-store"
        ok(runner.invoke(cli, ["remote", "add", "team", str(team), "--option", "auto_mkdir=true"]))
        text = (project / ".cas" / "config.toml").read_text()
        assert "[remote.team]" in text and str(team) in text
        listed = as_json(runner.invoke(cli, ["remote", "list", "--json"]))
        assert listed == {"team": {"url": str(team), "options": {"auto_mkdir": True}}}
        ok(runner.invoke(cli, ["sync", ".", "team"]))
        assert as_json(runner.invoke(cli, ["--store", "team", "ls", "--json"]))[0]["name"] == "p/s/f"
        shown = as_json(runner.invoke(cli, ["config", "--json"]))
        assert shown["config"]["remote"]["team"]["url"] == str(team)
        ok(runner.invoke(cli, ["remote", "remove", "team"]))
        assert as_json(runner.invoke(cli, ["remote", "list", "--json"])) == {}

    def test_user_config_and_the_store_overrides_it(self, project, tmp_path):
        runner = CliRunner()
        ok(runner.invoke(cli, ["remote", "add", "team", "/somewhere/user", "--user"]))
        assert (tmp_path / "xdg" / "cas" / "config.toml").exists()
        assert as_json(runner.invoke(cli, ["remote", "list", "--json"]))["team"]["url"] == "/somewhere/user"
        ok(runner.invoke(cli, ["remote", "add", "team", "/somewhere/store"]))
        assert as_json(runner.invoke(cli, ["remote", "list", "--json"]))["team"]["url"] == "/somewhere/store"

    @pytest.mark.parametrize("option", ["secret=abc9", "key=AKIA9", "token=tok9", "account_key=k9q", "password=pw9"])
    def test_secrets_never_go_in_a_config_file(self, project, option):
        err = one_line_error(CliRunner().invoke(cli, ["remote", "add", "team", "s3://b/cas", "--option", option]))
        assert "credential" in err and option.split("=")[1] not in err
        assert not (project / ".cas" / "config.toml").exists()

    def test_bad_config_is_one_line(self, project):
        (project / ".cas" / "config.toml").write_text("[remote.team\nurl=")
        err = one_line_error(CliRunner().invoke(cli, ["remote", "list"]))
        assert "not valid TOML" in err
        one_line_error(CliRunner().invoke(cli, ["remote", "add", "bad name", "/x"]))

    def test_nearest_store_in_a_subprocess(self, project, tmp_path):
        env = {k: v for k, v in os.environ.items() if k != "CAS_STORE"}
        env["CAS_CEILING_DIRECTORIES"] = str(tmp_path)
        (project / "src" / "g.txt").write_text("g")
        r = subprocess.run([*cas_command(), "put", "g.txt", "p/s/g"], cwd=project / "src", env=env, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert not (project / "src" / ".cas").exists() and (project / ".cas" / "cas-format").exists()


class TestCompletion:
    """Issue 12 item 7: click's shell completion, artifact names and @versions from the index."""

    @pytest.mark.parametrize("shell,marker", [("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete --no-files")])
    def test_completion_prints_a_script(self, run, shell, marker):
        out = ok(run("completion", shell, store=False))
        assert "_CAS_COMPLETE" in out and marker in out

    def complete(self, store: Path, words: str) -> list[str]:
        env = dict(os.environ, CAS_STORE=str(store), COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1),
                   _CAS_COMPLETE="bash_complete")
        r = subprocess.run(cas_command(), env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        return [line.split(",", 1)[1] for line in r.stdout.splitlines() if line]

    def test_names_and_versions_complete_from_the_index(self, tmp_path):
        store = tmp_path / "s"
        for name in ("churn/train/model", "churn/train/metrics", "churn/test/report"):
            sh("put", "-", name, store=store, input=b"x")
        sh("put", "-", "churn/train/model", store=store, input=b"y")
        sh("alias", "churn/train/model@1", "production", store=store)
        assert self.complete(store, "cas log churn/tr") == ["churn/train/metrics", "churn/train/model"]
        assert self.complete(store, "cas show churn/train/model@") == [
            "churn/train/model@latest", "churn/train/model@production", "churn/train/model@2", "churn/train/model@1"]
        assert self.complete(store, "cas get churn/train/model@p") == ["churn/train/model@production"]
        assert "diff" in self.complete(store, "cas di")

    def test_completion_never_creates_a_store(self, tmp_path):
        assert self.complete(tmp_path / "none", "cas log ch") == []
        assert not (tmp_path / "none").exists()
