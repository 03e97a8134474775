"""Every command the README and docs/ show still exists with every option they give it, and every file they link."""

import re
import shlex

import typer

from onepunch import cli
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "ARCHITECTURE.md"]


def documented_commands() -> list[tuple[str, list[str]]]:
    """(file, argv after `onepunch`) of every onepunch command in the docs' code blocks and inline code."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = re.findall(r"```\n(.*?)```", text, re.S)
        inline = re.sub(r"```\n.*?```", "", text, flags=re.S)
        blocks += [span for span in re.findall(r"`([^`\n]+)`", inline) if "onepunch " in span]
        for block in blocks:
            for line in (part for full in block.splitlines() for part in re.split(r"&&|;|\|", full)):
                line = line.split("#")[0].strip().rstrip("\\").strip()
                m = re.search(r"(?:^|\s|/)onepunch (?=[a-z])(.*)$", line)
                if not m or "<" in line or "import " in line:
                    continue
                try:
                    argv = shlex.split(m.group(1))
                except ValueError:
                    continue
                out.append((doc.name, argv))
    return out


def test_every_documented_command_and_option_exists():
    group = typer.main.get_command(cli.app)
    found = documented_commands()
    assert len(found) > 30
    for doc, argv in found:
        name = argv[0]
        assert name in group.commands, f"{doc}: `onepunch {' '.join(argv)}`: no command {name!r}"
        options = {o for p in group.commands[name].params for o in (*p.opts, *p.secondary_opts)}
        for token in argv[1:]:
            flag = token.split("=")[0]
            if flag.startswith("--"):
                assert flag in options, f"{doc}: `onepunch {' '.join(argv)}`: {name} has no {flag}"


def test_every_linked_file_exists():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
            if target.startswith("http"):
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links {target}, which does not exist"
