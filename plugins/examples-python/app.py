"""Refuses containers whose command is on a deny list.

A validator written in Python against the contract in `wit/` (world
`validator`), built into a component with componentize-py.

Settings: `commands`, comma-separated command names or absolute paths
(default: nc, ncat, netcat, socat, nmap, tcpdump). A name matches the
basename of the process's first argument, a path matches it exactly.
"""

import posixpath
from typing import List, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.exports.plugin import Info
from wit_world.imports import host
from wit_world.imports.types import Container, Denial

NAME = "deny-commands"
VERSION = "0.1.0"
DEFAULT_COMMANDS = ["nc", "ncat", "netcat", "socat", "nmap", "tcpdump"]

# Set by `configure`, read by `check`: one instance serves one run.
commands: List[str] = list(DEFAULT_COMMANDS)


class Settings:
    """The settings `configure` received, read the way the Rust SDK reads
    them: a key given twice or left unread is an error."""

    def __init__(self, settings: List[Tuple[str, str]]):
        self.values = {}
        self.errors = []
        for key, value in settings:
            if key in self.values:
                self.errors.append(f"setting `{key}` given twice")
            self.values[key] = value

    def list(self, key: str):
        """A comma-separated list; blank items are skipped."""
        value = self.values.pop(key, None)
        if value is None:
            return None
        return [item.strip() for item in value.split(",") if item.strip()]

    def error(self, message: str):
        self.errors.append(message)

    def finish(self):
        """Raises the errors, and one per key nobody read, as the
        `configure` result the host reports."""
        errors = self.errors + [f"unknown setting `{key}`" for key in self.values]
        if errors:
            raise Err("; ".join(errors))


class Plugin(wit_world.exports.Plugin):
    def describe(self) -> Info:
        return Info(
            name=NAME,
            version=VERSION,
            description="refuses containers whose command is on a deny list",
        )

    def configure(self, settings: List[Tuple[str, str]]) -> None:
        global commands
        parsed = Settings(settings)
        listed = parsed.list("commands")
        if listed is None:
            listed = list(DEFAULT_COMMANDS)
        for item in listed:
            if "/" in item and not item.startswith("/"):
                parsed.error(
                    f"setting `commands`: `{item}` is neither a name nor an absolute path"
                )
        parsed.finish()
        commands = listed
        host.log(host.Level.DEBUG, f"denying {', '.join(commands) or 'nothing'}")


class Validate(wit_world.exports.Validate):
    def check(self, container: Container) -> None:
        if not container.args:
            return
        command = container.args[0]
        name = posixpath.basename(command)
        for denied in commands:
            if denied == command or ("/" not in denied and denied == name):
                host.log(host.Level.INFO, f"refusing {container.id}: runs {command}")
                raise Err(Denial(reason=f"command `{command}` is not allowed"))
