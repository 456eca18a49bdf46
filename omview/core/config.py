"""Where the cluster's node list comes from: an openMosix map file or omview's own settings file.

People who ran openMosix already have an `/etc/openmosix.map`; they can point omview at it and see
their nodes at once. Everything the map cannot say (SSH user, key, sudo, CRIU path, sample
interval) lives in our TOML settings file, which may reference a map for the node list.

Every mistake in either file raises `ConfigError` with one line of text,
``FILE:LINE: expected ..., found ...``, because the message ends up in a status bar, a dialog
title or a terminal and must point at the exact place to fix.

Map rules we chose where the HOWTO is silent:

* Comments start at ``#`` anywhere on a line; fields are separated by any run of blanks.
* ``ALIAS`` is accepted in any letter case, and a RANGE of ``0`` means the same (HOWTO 4.4.2).
  An ALIAS may appear before or after the line that defines its node.
* A range counts up the last byte of an IPv4 address and may not go past ``.254``: ``.255`` is the
  broadcast address of the /24 networks openMosix ranges were written for, and openMosix never
  carried into the next byte. A single address (RANGE 1) may end in any byte.
* Host names and IPv6 addresses only take RANGE 1 (or ALIAS).
* A node ID and an address may each be given to one node only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

MAX_NODE_ID = 65535
MIN_INTERVAL = 0.2
MAX_INTERVAL = 60.0
#: Highest last byte a counted-up IPv4 range may reach (see the module docstring).
MAX_RANGE_LAST_BYTE = 254
#: Map files looked for in /etc, in the order of the openMosix user tools.
MAP_NAMES = ("openmosix.map", "mosix.map", "hpc.map")
ENV_CLUSTER = "OMVIEW_CLUSTER"
LOCAL = "local"
TRANSPORTS = ("ssh", LOCAL)
DEFAULT_PYTHON = "python3"
#: Used by the SSH transport when `ClusterConfig.known_hosts` is None.
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SOURCE = "this machine (no cluster configured)"

_MAP_SHAPE = '"ID ADDRESS RANGE"'
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")


class ConfigError(ValueError):
    """A mistake in a configuration file or reference; `str()` is one line naming the place."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.message = message
        where = source if line is None else f"{source}:{line}"
        text = f"{where}: {message}" if where else message
        self.text = " ".join(text.splitlines())
        super().__init__(self.text)

    def __str__(self) -> str:
        return self.text


class UnknownNodeError(ConfigError, KeyError):
    """`ClusterConfig.node()` with an id the cluster lacks; also a KeyError for dict-like callers."""


# --------------------------------------------------------------------------- data


@dataclass
class MapEntry:
    """One node of an openMosix map, ranges already counted up; `line` is where it was defined."""

    id: int
    address: str
    aliases: list[str] = field(default_factory=list)
    line: int = 0


@dataclass
class NodeConfig:
    """How to reach one node and run its agent.

    Only address ``"local"`` or ``transport="local"`` mean "this machine through a subprocess";
    ``"localhost"`` is SSH to loopback, so a local sshd can be tested like any node.
    None means "not set here": the SSH layer then uses ~/.ssh/config and its own defaults.
    """

    id: int
    address: str
    name: str = ""
    aliases: list[str] = field(default_factory=list)
    transport: str = "ssh"
    user: str | None = None
    port: int | None = None
    key: str | None = None
    sudo: bool = False
    python: str = DEFAULT_PYTHON
    criu: str | None = None
    state_dir: str | None = None

    def __post_init__(self) -> None:
        if self.address == LOCAL:
            self.transport = LOCAL

    @property
    def is_local(self) -> bool:
        return self.transport == LOCAL

    @property
    def label(self) -> str:
        """What to show for the node when it has no name: the address, as openMosixview did."""
        return self.name or self.address


@dataclass
class ClusterConfig:
    """The whole cluster as configured; `source` says where it came from, for titles and errors."""

    nodes: list[NodeConfig]
    interval: float = 1.0
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    name: str = ""
    source: str = ""
    #: Every file whose presence or text made this configuration, absolute, found or not (the
    #: settings file looked for before an /etc map): omctl's quick path trusts a cached answer
    #: only while none of them changed (omview.quickctl).
    consulted: list[str] = field(default_factory=list, compare=False, repr=False)

    def node(self, node_id: int) -> NodeConfig:
        for node in self.nodes:
            if node.id == node_id:
                return node
        known = ", ".join(str(n.id) for n in self.nodes) or "none"
        raise UnknownNodeError(self.source, f"expected a node id of this cluster ({known}), found {node_id}")


# --------------------------------------------------------------------------- helpers


def _quote(text: str) -> str:
    """Quote a found value so blanks and odd characters stay visible on one line."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _is_number(text: str) -> bool:
    """ASCII digits only: int() would also take "+1", "1_0" and non-ASCII digits."""
    return text.isascii() and text.isdigit()


def _address_kind(text: str) -> str | None:
    """"ipv4", "ipv6", "host", or None when the text is none of them."""
    import ipaddress  # here and below: omctl talking to a running hub reads no map and pays for none of these

    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return "ipv4" if ip.version == 4 else "ipv6"
    if re.fullmatch(r"[0-9.]+", text):  # looks like IPv4 but is not one, e.g. 10.0.0.300
        return None
    if len(text.rstrip(".")) > 253 or not _HOSTNAME.fullmatch(text):
        return None
    return "host"


def _address_key(text: str) -> str:
    """Compare addresses by meaning: IPs normalized, host names case-insensitive."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower().rstrip(".")


def _read_text(path: Path, source: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, "expected a readable file, found no such file") from None
    except IsADirectoryError:
        raise ConfigError(source, "expected a file, found a directory") from None
    except OSError as exc:
        raise ConfigError(source, f"expected a readable file, found: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        found = f"the byte 0x{data[exc.start]:02x}"
        raise ConfigError(source, f"expected UTF-8 text, found {found}", line) from None


# --------------------------------------------------------------------------- openMosix map


@dataclass
class _MapLine:
    number: int
    text: str  # the fields joined by one blank, for messages
    first: int
    address: str
    count: int  # 0 = ALIAS

    @property
    def last(self) -> int:
        return self.first + max(self.count, 1) - 1

    def where(self) -> str:
        return f"line {self.number}: {_quote(self.text)}"


def _parse_map_line(fields: list[str], number: int, source: str) -> _MapLine:
    shown = " ".join(fields)

    def fail(expected: str, detail: str = "") -> NoReturn:
        raise ConfigError(source, f"expected {expected}, found {_quote(shown)}{detail}", number)

    if len(fields) != 3:
        fail(f"{_MAP_SHAPE} (three fields)")
    id_text, address, range_text = fields
    if not _is_number(id_text) or not 1 <= int(id_text) <= MAX_NODE_ID:
        fail(f"{_MAP_SHAPE} with ID a number 1..{MAX_NODE_ID}")
    kind = _address_kind(address)
    if kind is None:
        fail(f"{_MAP_SHAPE} with ADDRESS an IPv4 or IPv6 address or a host name")
    if range_text.upper() == "ALIAS":
        count = 0
    elif _is_number(range_text) and int(range_text) >= 0:
        count = int(range_text)
    else:
        fail(f"{_MAP_SHAPE} with RANGE a number >= 1 or ALIAS")
    first = int(id_text)
    if count > 1:
        if kind == "host":
            fail("an IPv4 address when RANGE is above 1 (openMosix counts up its last byte)")
        if kind == "ipv6":
            fail("RANGE 1 or ALIAS for an IPv6 address (only IPv4 ranges count up)")
        last_byte = int(address.rsplit(".", 1)[1]) + count - 1
        if last_byte > MAX_RANGE_LAST_BYTE:
            reach = f" (it would reach .{last_byte})"
            fail(f"a range whose last byte stays at {MAX_RANGE_LAST_BYTE} or below", reach)
        if first + count - 1 > MAX_NODE_ID:
            reach = f" (it would reach {first + count - 1})"
            fail(f"a range whose node IDs stay at {MAX_NODE_ID} or below", reach)
    return _MapLine(number, shown, first, address, count)


def parse_map(text: str, source: str) -> list[MapEntry]:
    """Parse openMosix map text (HOWTO 4.4.2) into one entry per node, sorted by id.

    `source` names the file in error messages.
    """
    lines: list[_MapLine] = []
    for number, raw in enumerate(text.split("\n"), 1):
        fields = raw.split("#", 1)[0].split()
        if fields:
            lines.append(_parse_map_line(fields, number, source))

    nodes: dict[int, MapEntry] = {}
    defined_by: dict[int, _MapLine] = {}
    address_owner: dict[str, tuple[int, _MapLine]] = {}

    def claim(address: str, node_id: int, line: _MapLine) -> None:
        key = _address_key(address)
        if key in address_owner:
            owner, other = address_owner[key]
            raise ConfigError(
                source,
                f"expected each address once, found {_quote(line.text)} reusing {address} "
                f"of node {owner} ({other.where()})",
                line.number,
            )
        address_owner[key] = (node_id, line)

    for line in (ln for ln in lines if ln.count >= 1):
        for node_id in range(line.first, line.last + 1):
            if node_id in defined_by:
                other = defined_by[node_id]
                if line.count == 1 and other.count == 1:
                    expected = "each node ID once"
                    detail = f"defining node {node_id}, already defined on"
                else:
                    expected = "node ID ranges that do not overlap"
                    detail = (
                        f"(nodes {line.first}..{line.last}) overlapping nodes {other.first}..{other.last} of"
                    )
                found = f"{_quote(line.text)} {detail} {other.where()}"
                raise ConfigError(source, f"expected {expected}, found {found}", line.number)
            defined_by[node_id] = line
        for offset in range(line.count):
            node_id = line.first + offset
            if line.count == 1:
                address = line.address
            else:
                head, last = line.address.rsplit(".", 1)
                address = f"{head}.{int(last) + offset}"
            claim(address, node_id, line)
            nodes[node_id] = MapEntry(node_id, address, [], line.number)

    for line in (ln for ln in lines if ln.count == 0):
        if line.first not in nodes:
            raise ConfigError(
                source,
                f"expected ALIAS for a node defined by an {_MAP_SHAPE} line, found {_quote(line.text)} "
                f"but no line defines node {line.first}",
                line.number,
            )
        claim(line.address, line.first, line)
        nodes[line.first].aliases.append(line.address)

    return [nodes[k] for k in sorted(nodes)]


def load_map(path: str | os.PathLike[str]) -> list[MapEntry]:
    """Read and parse an openMosix map file; an empty map is an error (a cluster needs a node)."""
    source = os.fspath(path)
    entries = parse_map(_read_text(Path(path), source), source)
    if not entries:
        example = '"1 192.168.1.1 4"'
        raise ConfigError(source, f"expected at least one line {_MAP_SHAPE} such as {example}, found none")
    return entries


# --------------------------------------------------------------------------- settings file (TOML)

_CLUSTER_KEYS = ("name", "interval", "known_hosts", "accept_new_host_keys", "map")
_DEFAULT_KEYS = ("user", "port", "key", "sudo", "python", "criu", "state_dir")
_NODE_KEYS = ("id", "name", "address", "aliases", "transport", *_DEFAULT_KEYS)
_TOP_KEYS = ("cluster", "defaults", "node")


def _describe(value: Any) -> str:
    """A found TOML value with its type, e.g. 'the string "22"'."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {_quote(value)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__} value"


class _Checker:
    """Type checks for one settings file, raising `FILE: key "...": expected ..., found ...`."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, key: str, expected: str, found: str) -> NoReturn:
        raise ConfigError(self.source, f'key "{key}": expected {expected}, found {found}')

    def table(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"a table [{key}]", _describe(value))
        return value

    def known_keys(self, prefix: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                self.fail(f"{prefix}{key}", "one of " + ", ".join(allowed), "an unknown key")

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            self.fail(key, "a non-empty string", _describe(value) if value != "" else "an empty string")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, "true or false", _describe(value))
        return value

    def integer(self, key: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(key, f"a whole number {low}..{high}", _describe(value))
        return value

    def number(self, key: str, value: Any, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            self.fail(key, f"a number of seconds {low:g}..{high:g}", _describe(value))
        return float(value)

    def path(self, key: str, value: Any) -> str:
        """A path on THIS machine: `~` expands, relative paths resolve against the file's folder."""
        text = os.path.expanduser(self.string(key, value))
        return os.path.normpath(os.path.join(self.base_dir, text))

    def address(self, key: str, value: Any) -> str:
        text = self.string(key, value)
        if text != LOCAL and _address_kind(text) is None:
            self.fail(key, f'an IPv4 or IPv6 address, a host name or "{LOCAL}"', _describe(value))
        return text

    def addresses(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            self.fail(key, "an array of addresses", _describe(value))
        return [self.address(f"{key}[{i}]", item) for i, item in enumerate(value)]


def _node_options(check: _Checker, prefix: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """The per-node keys shared by [defaults] and [[node]], checked and converted.

    `criu`, `python` and `state_dir` are paths on the NODE, so they are kept verbatim (the agent
    resolves them there); only `key` is a local file.
    """
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = prefix + key
        if key == "user" or key == "python" or key == "criu" or key == "state_dir" or key == "name":
            out[key] = check.string(name, value)
        elif key == "port":
            out[key] = check.integer(name, value, 1, 65535)
        elif key == "key":
            out[key] = check.path(name, value)
        elif key == "sudo":
            out[key] = check.boolean(name, value)
    return out


def parse_settings(text: str, source: str, base_dir: str | os.PathLike[str] | None = None) -> ClusterConfig:
    """Parse our TOML settings; `base_dir` (default: the folder of `source`) anchors relative paths."""
    import tomllib

    base = Path(base_dir) if base_dir is not None else Path(source).absolute().parent
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        if match:
            raise ConfigError(
                source, f"expected valid TOML, found an error at column {match[3]}: {match[1]}", int(match[2])
            ) from None
        raise ConfigError(source, f"expected valid TOML, found an error: {exc}") from None

    check = _Checker(source, base)
    check.known_keys("", data, _TOP_KEYS)
    cluster = check.table("cluster", data.get("cluster", {}))
    check.known_keys("cluster.", cluster, _CLUSTER_KEYS)
    config = ClusterConfig(nodes=[], source=source)
    if "name" in cluster:
        config.name = check.string("cluster.name", cluster["name"])
    if "interval" in cluster:
        config.interval = check.number("cluster.interval", cluster["interval"], MIN_INTERVAL, MAX_INTERVAL)
    if "known_hosts" in cluster:
        config.known_hosts = check.path("cluster.known_hosts", cluster["known_hosts"])
    if "accept_new_host_keys" in cluster:
        key = "accept_new_host_keys"
        config.accept_new_host_keys = check.boolean(f"cluster.{key}", cluster[key])

    defaults_table = check.table("defaults", data.get("defaults", {}))
    check.known_keys("defaults.", defaults_table, _DEFAULT_KEYS)
    defaults = _node_options(check, "defaults.", defaults_table)

    from_map: dict[int, MapEntry] = {}
    if "map" in cluster:
        map_path = check.path("cluster.map", cluster["map"])
        config.consulted.append(os.path.abspath(map_path))
        from_map = {entry.id: entry for entry in load_map(map_path)}

    node_tables = data.get("node", [])
    if not isinstance(node_tables, list) or not all(isinstance(t, dict) for t in node_tables):
        check.fail("node", "[[node]] tables (an array of tables)", _describe(node_tables))
    given: dict[int, tuple[str, dict[str, Any]]] = {}
    for number, table in enumerate(node_tables, 1):
        prefix = f"node[{number}]."
        check.known_keys(prefix, table, _NODE_KEYS)
        if "id" not in table:
            check.fail(prefix + "id", f"a node id 1..{MAX_NODE_ID} in every [[node]]", "no id")
        node_id = check.integer(prefix + "id", table["id"], 1, MAX_NODE_ID)
        if node_id in given:
            check.fail(prefix + "id", "each id once", f"{node_id} again (also {given[node_id][0]}id)")
        options = _node_options(check, prefix, table)
        if "address" in table:
            options["address"] = check.address(prefix + "address", table["address"])
        if "aliases" in table:
            options["aliases"] = check.addresses(prefix + "aliases", table["aliases"])
        if "transport" in table:
            transport = table["transport"]
            if transport not in TRANSPORTS:
                choices = " or ".join(f'"{t}"' for t in TRANSPORTS)
                check.fail(prefix + "transport", choices, _describe(transport))
            if transport != LOCAL and options.get("address", "") == LOCAL:
                expected = f'"{LOCAL}" (the address is "{LOCAL}")'
                check.fail(prefix + "transport", expected, _describe(transport))
            options["transport"] = transport
        given[node_id] = (prefix, options)

    for node_id in sorted(set(from_map) | set(given)):
        fields: dict[str, Any] = dict(defaults)
        if node_id in from_map:
            entry = from_map[node_id]
            fields.update(address=entry.address, aliases=list(entry.aliases))
        prefix, options = given.get(node_id, ("", {}))
        fields.update(options)
        if "address" not in fields:
            if fields.get("transport") != LOCAL:
                check.fail(prefix + "address", "an address (no map line defines this node)", "none")
            fields["address"] = LOCAL
        config.nodes.append(NodeConfig(id=node_id, **fields))
    if not config.nodes:  # settings without nodes only tune this machine's view of itself
        config.nodes.append(_local_node())
    return config


def load_settings(path: str | os.PathLike[str]) -> ClusterConfig:
    """Read a settings file; relative paths in it resolve against its folder."""
    source = os.fspath(path)
    return parse_settings(_read_text(Path(path), source), source, Path(path).absolute().parent)


def load_map_cluster(path: str | os.PathLike[str]) -> ClusterConfig:
    """A cluster made from a bare openMosix map: SSH to every node with the user's SSH defaults."""
    source = os.fspath(path)
    nodes = [NodeConfig(id=e.id, address=e.address, aliases=list(e.aliases)) for e in load_map(path)]
    return ClusterConfig(nodes=nodes, source=source)


# --------------------------------------------------------------------------- lookup


def _local_node() -> NodeConfig:
    return NodeConfig(id=1, address=LOCAL, name=os.uname().nodename, transport=LOCAL)


def default_cluster() -> ClusterConfig:
    """This machine alone, through a subprocess: what a newcomer without a cluster sees."""
    return ClusterConfig(nodes=[_local_node()], source=DEFAULT_SOURCE)


def default_settings_path(env: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_CONFIG_HOME/omview/cluster.toml`; XDG says a relative XDG_CONFIG_HOME is ignored."""
    config_home = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(config_home):
        home = env.get("HOME") or os.path.expanduser("~")
        config_home = os.path.join(home, ".config")
    return Path(config_home, "omview", "cluster.toml")


def _load_named(path: Path, source: str) -> ClusterConfig:
    """A file the user named: .toml is settings, anything else a map; a missing one says how to fix it."""
    is_settings = path.suffix.lower() == ".toml"
    if not path.exists():
        if is_settings:
            how = (
                'create it with a [[node]] table per node (id = 1, address = "10.0.0.1")'
                " or save one from omview's settings"
            )
            raise ConfigError(source, f"expected a cluster settings file, found no such file; {how}")
        how = f'create it with a line {_MAP_SHAPE} per node range, e.g. "1 192.168.1.1 4"'
        raise ConfigError(source, f"expected an openMosix map file, found no such file; {how}")
    config = load_settings(path) if is_settings else load_map_cluster(path)
    config.source = source
    return config


def load_cluster(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    config_home: str | os.PathLike[str] | None = None,
    etc_dir: str | os.PathLike[str] = "/etc",
) -> ClusterConfig:
    """Find and load the cluster configuration.

    Order: `path`; `$OMVIEW_CLUSTER`; the settings file (under `config_home` if given, else
    `default_settings_path(env)`); `openmosix.map`, `mosix.map`, `hpc.map` in `etc_dir`; else this
    machine alone. The roots are parameters so tests never read the real home or /etc.
    """
    if path is not None:
        return _consulted(_load_named(Path(path), os.fspath(path)), [path])
    named = env.get(ENV_CLUSTER, "")
    if named:
        return _consulted(_load_named(Path(named), f"{named} (from ${ENV_CLUSTER})"), [named])
    if config_home is not None:
        settings = Path(config_home, "omview", "cluster.toml")
    else:
        settings = default_settings_path(env)
    tried: list[str | os.PathLike[str]] = [settings]
    if settings.is_file():
        return _consulted(load_settings(settings), tried)
    for name in MAP_NAMES:
        candidate = Path(etc_dir, name)
        tried.append(candidate)
        if candidate.is_file():
            return _consulted(load_map_cluster(candidate), tried)
    return _consulted(default_cluster(), tried)


def _consulted(config: ClusterConfig, tried: list[str | os.PathLike[str]]) -> ClusterConfig:
    """The files looked for on the way, ahead of those the loader read (a map named in settings)."""
    config.consulted[:0] = [os.path.abspath(p) for p in tried]
    return config


# --------------------------------------------------------------------------- writing


def _toml_value(value: str | int | float | bool | list[str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def dump_settings(config: ClusterConfig) -> str:
    """The settings file text for `config`: every node written out in full, no map reference."""
    lines = ["# omview cluster settings", "", "[cluster]"]
    if config.name:
        lines.append(f"name = {_toml_value(config.name)}")
    lines.append(f"interval = {_toml_value(float(config.interval))}")
    if config.known_hosts is not None:
        lines.append(f"known_hosts = {_toml_value(config.known_hosts)}")
    lines.append(f"accept_new_host_keys = {_toml_value(config.accept_new_host_keys)}")
    for node in config.nodes:
        lines += ["", "[[node]]", f"id = {node.id}"]
        if node.name:
            lines.append(f"name = {_toml_value(node.name)}")
        lines.append(f"address = {_toml_value(node.address)}")
        if node.aliases:
            lines.append(f"aliases = {_toml_value(node.aliases)}")
        if node.transport != ("local" if node.address == LOCAL else "ssh"):
            lines.append(f"transport = {_toml_value(node.transport)}")
        optional: list[tuple[str, str | int | bool | None]] = [
            ("user", node.user),
            ("port", node.port),
            ("key", node.key),
            ("sudo", node.sudo or None),
            ("python", node.python if node.python != DEFAULT_PYTHON else None),
            ("criu", node.criu),
            ("state_dir", node.state_dir),
        ]
        lines += [f"{key} = {_toml_value(value)}" for key, value in optional if value is not None]
    return "\n".join(lines) + "\n"


def save_cluster(config: ClusterConfig, path: str | os.PathLike[str]) -> None:
    """Write `config` as a settings file, atomically and readable by the owner only (0600).

    Atomic so a crash never leaves half a file that would stop every app from starting.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    text = dump_settings(config)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------- omctl references


def parse_node_ref(text: str) -> tuple[int, int]:
    """`"2:1234"` -> (2, 1234): a process named by node id and PID, as omctl takes it."""
    node_text, sep, pid_text = text.strip().partition(":")
    if (
        sep
        and _is_number(node_text)
        and _is_number(pid_text)
        and 1 <= int(node_text) <= MAX_NODE_ID
        and int(pid_text) >= 1
    ):
        return int(node_text), int(pid_text)
    raise ConfigError(
        "", f'expected NODE:PID such as "2:1234" (NODE 1..{MAX_NODE_ID}, PID >= 1), found {_quote(text)}'
    )
