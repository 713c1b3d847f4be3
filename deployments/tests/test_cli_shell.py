"""The `signalbox` command as a shell user meets it: installed alone into a fresh virtualenv
(no Django), `--help` on every command, and completion in real bash, zsh and fish."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from catalog.models import ApiToken
from cli.signalbox_cli.client import Backoff, GaveUp, Unreachable, patiently
from cli.signalbox_cli.completion import walk
from cli.signalbox_cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
ALIASES = {"rollout status": "rollout get", "incident acknowledge": "incident ack"}


def _help(*argv: str) -> str:
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out  # argparse prints --help to sys.stdout itself
    try:
        assert main([*argv, "--help"], out=out, err=out) == 0
    finally:
        sys.stdout = saved
    return out.getvalue()


def test_every_command_has_a_description_examples_and_its_exit_codes() -> None:
    commands = [node.path for node in walk(build_parser()) if not node.subs]
    assert {
        "rollout get",
        "rollout status",
        "silence add",
        "incident ack",
        "catalog diff",
        "scale set",
        "completion",
    } <= set(commands)
    for path in commands:
        text = _help(*path.split())
        canonical = ALIASES.get(path, path)
        assert f"usage: signalbox {canonical}" in text, path
        description = text.split("\n\n")[1]
        assert len(description) > 40, (path, description)
        examples = text.split("Examples:\n")[1].split("\n\n")[0]
        assert f"signalbox {path.split()[0]}" in examples, (path, examples)
        codes = text.split("Exit codes:\n")[1].split("\n\n")[0].splitlines()
        assert codes[0].split()[0] == "0", (path, codes)
    assert "130  interrupted" in _help("rollout", "start")
    assert "1    the files would change the catalog" in _help("catalog", "diff")


def test_backoff_grows_with_full_jitter_and_stops_at_the_deadline() -> None:
    import random

    backoff = Backoff(base=0.5, cap=4.0, rng=random.Random(7))
    waits = [backoff.next() for _ in range(200)]
    ceilings = [min(4.0, 0.5 * 2**n) for n in range(200)]
    assert all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert max(waits[:2]) <= 1.0 and max(waits[5:]) > 3.0  # grows, and is capped
    # patiently: retried until the deadline on a fake clock, then GaveUp (an Unreachable)
    now = [0.0]
    slept: list[float] = []
    calls = [0]

    def failing() -> None:
        calls[0] += 1
        raise Unreachable("cannot reach Signalbox at http://x: refused")

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(GaveUp, match="gave up at the deadline"):
        patiently(
            failing,
            deadline=30.0,
            clock=lambda: now[0],
            sleep=sleep,
            backoff=Backoff(rng=random.Random(1)),
        )
    assert now[0] == pytest.approx(30.0) and calls[0] == len(slept) + 1
    assert max(slept) <= 10.0  # the default cap
    # and a call that recovers returns its answer
    answers: list[Exception | str] = [Unreachable("blip"), Unreachable("blip"), "ok"]

    def flaky() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    now[0] = 0.0
    assert patiently(flaky, deadline=5.0, clock=lambda: now[0], sleep=sleep) == "ok"
    assert 0 < now[0] < 5.0


def test_bash_completes_from_the_parser_tree() -> None:
    script = _script("bash")

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        program = (
            f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _signalbox; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(
            ["bash", "--norc", "-c", program], capture_output=True, text=True, timeout=30, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
        return [w for w in done.stdout.splitlines() if w]

    assert complete("signalbox", "") == [
        "rollout",
        "scale",
        "silence",
        "incident",
        "catalog",
        "completion",
    ]
    assert complete("signalbox", "rollout", "g") == ["get"]
    assert complete("signalbox", "--url", "http://x", "incident", "a") == ["ack", "acknowledge"]
    assert complete("signalbox", "rollout", "get", "42", "-o", "") == ["table", "json", "yaml"]
    assert complete("signalbox", "rollout", "list", "--s") == ["--service", "--state"]
    assert complete("signalbox", "silence", "list", "--team", "") == []  # a value: free text
    assert "cli" in complete("signalbox", "catalog", "diff", "cl")  # PATH: file names


# An interactive zsh on a pty: load compinit and the script, type `signalbox silence ` and
# TAB, and read the screen until the listing shows (or 20 s pass).
ZPTY = r"""
zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PS1="> "; autoload -U compinit; compinit -u -D; source SCRIPT; signalbox() { }'
zpty -w -n z $'signalbox silence \t'
local screen="" part
integer deadline=$(( SECONDS + 20 ))
while (( SECONDS < deadline )) && [[ "$screen" != *"end silences now"* ]]; do
    if zpty -r -t z part; then screen+="$part"; else sleep 0.1; fi
done
print -r -- "$screen"
zpty -d z
"""


def test_zsh_and_fish_complete_from_the_parser_tree(tmp_path: Path) -> None:
    if not (shutil.which("zsh") and shutil.which("fish")):
        pytest.skip("zsh or fish is not installed here (apt-get install zsh fish)")
    zsh = _script("zsh")
    assert subprocess.run(["zsh", "-n", "-c", zsh], timeout=30).returncode == 0
    # the candidates function the _signalbox widget calls, run by zsh itself
    program = (
        f"compdef() {{ }}\n{zsh}\n__signalbox_candidates '' rollout get 42 --output; "
        "echo ---; __signalbox_candidates s; echo ---; __signalbox_walk scale set a b; "
        'echo "$__sb_path"'
    )
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("---\n") == [
        "table\njson\nyaml\n",
        "rollout\nscale\nsilence\nincident\ncatalog\ncompletion\n",
        "scale set\n",
    ]
    # and TAB in an interactive zsh (on a pty, through zsh's own zpty), with compinit
    script_file = tmp_path / "_signalbox"
    script_file.write_text(zsh)
    tabbed = subprocess.run(
        ["zsh", "-f", "-c", ZPTY.replace("SCRIPT", str(script_file))],
        capture_output=True,
        timeout=60,
    )
    screen = tabbed.stdout.decode(errors="replace")
    assert tabbed.returncode == 0, (screen[-2000:], tabbed.stderr)
    assert "add     -- silence matching incidents of a team" in screen
    assert "expire  -- end silences now" in screen
    # fish's own completion engine, given the script
    fish = _script("fish")

    def complete(line: str) -> list[str]:
        done = subprocess.run(
            ["fish", "--no-config", "-c", f"{fish}\ncomplete -C{line!r}"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert complete("signalbox silence ") == [
        "add\tsilence matching incidents of a team",
        "expire\tend silences now",
        "list\tlist silences (active ones unless --all or --expired)",
    ]
    assert complete("signalbox catalog diff -o ") == ["json", "table", "yaml"]
    assert "--chunk-size" in complete("signalbox incident list --")


def _script(shell: str) -> str:
    out = io.StringIO()
    assert main(["completion", shell], out=out) == 0
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_it_installs_alone_into_a_fresh_virtualenv(
    tmp_path: Path, world: Any, live_server: Any
) -> None:
    """`pip install ./cli` in a virtualenv of its own: no Django, no repository on the path.
    Offline: the wheel is built by the suite's pip (no build isolation: setuptools and wheel
    are in requirements-dev.txt), then installed into the fresh venv with --no-deps."""
    source = tmp_path / "cli"
    shutil.copytree(
        ROOT / "cli", source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    built = tmp_path / "dist"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(built),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = built.glob("signalbox_cli-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--no-index",
        "--no-deps",
        "--quiet",
        str(wheel),
    ]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    signalbox = str(venv / "bin" / "signalbox")
    done = subprocess.run(
        [signalbox, "--help"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "usage: signalbox" in done.stdout and "Exit codes:" in done.stdout
    python = str(venv / "bin" / "python")
    probe = (
        "import importlib.metadata as m, importlib.util as u; "
        "print(u.find_spec('django') is None, m.requires('signalbox-cli'))"
    )
    done = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert done.stdout.strip() == "True ['PyYAML>=6.0']", done.stderr
    # and the installed command speaks to a live Signalbox on its own
    _, plain = ApiToken.issue(team=world.team, name="ci", scopes=["read"])
    env |= {"SIGNALBOX_URL": live_server.url, "SIGNALBOX_TOKEN": plain}
    done = subprocess.run(
        [signalbox, "rollout", "list", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
    # without PyYAML (installed with --no-deps) yaml output says what to install
    yaml_list = [signalbox, "rollout", "list", "-o", "yaml"]
    done = subprocess.run(
        yaml_list, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert done.returncode == 2 and "needs PyYAML: pip install PyYAML" in done.stderr
    # with its dependencies, from a local package index when pip is configured with one
    local = _local_index_with("pyyaml")
    if local is None:
        return
    done = subprocess.run(
        [*pip[:4], "--index-url", local, "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        yaml_list, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


def _local_index_with(package: str) -> str | None:
    """A file:// package index pip is configured with (this machine's /etc/pip.conf or
    PIP_* settings) that holds `package`, if there is one."""
    found = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    )
    for row in found.stdout.splitlines():
        key, _, value = row.partition("=")
        if key.endswith(("index-url", "extra-index-url")):
            for url in value.strip("'\"").split():
                if url.startswith("file://") and (Path(url[7:]) / package).is_dir():
                    return url
    return None
