"""Tests for omview.core.config: openMosix maps, the TOML settings file, lookup and saving."""

from __future__ import annotations

import os
import socket
import stat
import tomllib
from pathlib import Path

import pytest

from omview.core.config import (
    DEFAULT_SOURCE,
    ClusterConfig,
    ConfigError,
    MapEntry,
    NodeConfig,
    UnknownNodeError,
    default_settings_path,
    dump_settings,
    load_cluster,
    load_map,
    load_settings,
    parse_map,
    parse_node_ref,
    parse_settings,
    save_cluster,
)

MAP = "/etc/openmosix.map"


def ids_and_addresses(entries: list[MapEntry]) -> list[tuple[int, str]]:
    return [(e.id, e.address) for e in entries]


def map_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_map(text, MAP)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- map: HOWTO forms


def test_howto_hostnames_one_per_line() -> None:
    entries = parse_map("1 node1 1\n2 node2 1\n3 node3 1\n4 node4 1\n", MAP)
    assert ids_and_addresses(entries) == [(1, "node1"), (2, "node2"), (3, "node3"), (4, "node4")]
    assert [e.line for e in entries] == [1, 2, 3, 4]


def test_howto_addresses_one_per_line_equal_the_range_form() -> None:
    single = parse_map("1 192.168.1.1 1\n2 192.168.1.2 1\n3 192.168.1.3 1\n4 192.168.1.4 1\n", MAP)
    ranged = parse_map("1 192.168.1.1 4\n", MAP)
    expected = [(1, "192.168.1.1"), (2, "192.168.1.2"), (3, "192.168.1.3"), (4, "192.168.1.4")]
    assert ids_and_addresses(single) == expected
    assert ids_and_addresses(ranged) == expected
    assert all(e.line == 1 for e in ranged)


def test_howto_alias_adds_a_second_interface() -> None:
    text = "1 192.168.1.1 1\n2 192.168.1.2 1\n3 192.168.1.3 1\n4 192.168.1.4 1\n4 192.168.10.10 ALIAS\n"
    entries = parse_map(text, MAP)
    assert len(entries) == 4
    assert entries[3] == MapEntry(4, "192.168.1.4", ["192.168.10.10"], 4)
    assert all(e.aliases == [] for e in entries[:3])


def test_mosix_alias_example_with_ranges() -> None:
    text = "\n1 10.1.1.1 3\n4 10.1.1.4 1\n4 10.1.2.1 ALIAS\n5 10.1.2.3 2\n    \n"
    entries = parse_map(text, MAP)
    assert ids_and_addresses(entries) == [
        (1, "10.1.1.1"),
        (2, "10.1.1.2"),
        (3, "10.1.1.3"),
        (4, "10.1.1.4"),
        (5, "10.1.2.3"),
        (6, "10.1.2.4"),
    ]
    assert entries[3].aliases == ["10.1.2.1"]


def test_alias_spellings_range_zero_and_alias_before_its_node() -> None:
    entries = parse_map("2 10.0.0.9 alias\n2 10.0.0.8 0\n1 10.0.0.1 2\n", MAP)
    assert entries[1].aliases == ["10.0.0.9", "10.0.0.8"]


def test_comments_blanks_tabs_and_crlf() -> None:
    text = "# cluster map\n\n1\t192.168.1.1\t  2   # two nodes\r\n   # indented comment\n3 node3 1#tight\n"
    assert ids_and_addresses(parse_map(text, MAP)) == [(1, "192.168.1.1"), (2, "192.168.1.2"), (3, "node3")]


def test_ipv6_single_address_and_last_byte_limit() -> None:
    entries = parse_map("1 fd00::1 1\n2 10.0.0.250 5\n7 10.0.0.255 1\n", MAP)
    assert ids_and_addresses(entries)[0] == (1, "fd00::1")
    assert entries[5].address == "10.0.0.254"
    assert entries[6].address == "10.0.0.255"  # a single address may end in any byte


def test_empty_map_parses_to_nothing_but_load_map_refuses_it(tmp_path: Path) -> None:
    assert parse_map("# nothing yet\n\n", MAP) == []
    path = tmp_path / "empty.map"
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError, match=r"empty\.map: expected at least one line"):
        load_map(path)


# --------------------------------------------------------------------------- map: errors


def test_bad_range_exact_message() -> None:
    text = "1 node1 1\n\n1  node1\tx  # oops\n"
    # line 3, the message from the brief; blanks normalized and the comment dropped in what was found
    assert map_error(text) == (
        '/etc/openmosix.map:3: expected "ID ADDRESS RANGE" with RANGE a number >= 1 or ALIAS, '
        'found "1 node1 x"'
    )


def test_missing_field_exact_message() -> None:
    assert map_error("# head\n2\tnode2  # no range\n") == (
        '/etc/openmosix.map:2: expected "ID ADDRESS RANGE" (three fields), found "2 node2"'
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0 node0 1", "with ID a number 1..65535"),
        ("65536 node 1", "with ID a number 1..65535"),
        ("+1 node1 1", "with ID a number 1..65535"),
        ("1 node_! 1", "with ADDRESS an IPv4 or IPv6 address or a host name"),
        ("1 10.0.0.300 1", "with ADDRESS an IPv4 or IPv6 address or a host name"),
        ("1 node1 -1", "with RANGE a number >= 1 or ALIAS"),
        ("1 node1 1 extra", "(three fields)"),
        ("1 node1 4", "an IPv4 address when RANGE is above 1"),
        ("1 fd00::1 2", "RANGE 1 or ALIAS for an IPv6 address"),
        (
            "1 192.168.1.250 6",
            'last byte stays at 254 or below, found "1 192.168.1.250 6" (it would reach .255)',
        ),
        ("65535 10.0.0.1 2", "node IDs stay at 65535 or below"),
    ],
)
def test_malformed_lines_give_one_line_with_file_and_line(text: str, fragment: str) -> None:
    message = map_error("# first line is a comment\n" + text + "\n")
    assert message.startswith("/etc/openmosix.map:2: expected ")
    assert fragment in message


def test_duplicate_id_names_both_lines() -> None:
    assert map_error("1 node1 1\n2 node2 1\n# x\n2 node9 1\n") == (
        '/etc/openmosix.map:4: expected each node ID once, found "2 node9 1" '
        'defining node 2, already defined on line 2: "2 node2 1"'
    )


def test_overlapping_ranges_name_both_lines() -> None:
    message = map_error("1 192.168.1.1 4\n3 10.0.0.3 2\n")
    assert message.startswith("/etc/openmosix.map:2: expected node ID ranges that do not overlap")
    assert 'found "3 10.0.0.3 2" (nodes 3..4) overlapping nodes 1..4 of line 1: "1 192.168.1.1 4"' in message


def test_single_id_inside_an_earlier_range_is_an_overlap() -> None:
    assert "overlapping nodes 1..4 of line 1" in map_error("1 192.168.1.1 4\n3 node3 1\n")


def test_alias_for_undefined_node() -> None:
    assert map_error("1 node1 1\n9 10.0.0.9 ALIAS\n") == (
        '/etc/openmosix.map:2: expected ALIAS for a node defined by an "ID ADDRESS RANGE" line, '
        'found "9 10.0.0.9 ALIAS" but no line defines node 9'
    )


def test_address_used_twice() -> None:
    message = map_error("1 192.168.1.1 3\n5 192.168.1.2 1\n")
    assert message.startswith("/etc/openmosix.map:2: expected each address once")
    assert "reusing 192.168.1.2 of node 2 (line 1:" in message
    # host names compare without case, IPs by value
    assert "reusing NODE1 of node 1 (line 1:" in map_error("1 node1 1\n2 x 1\n2 NODE1 ALIAS\n")
    assert "reusing fd00:0::1 of node 1" in map_error("1 fd00::1 1\n2 fd00:0::1 1\n")


def test_control_characters_stay_on_one_line() -> None:
    message = map_error("1 node1 \x1b[31m\n")
    assert "\\x1b" in message and "\x1b" not in message


# --------------------------------------------------------------------------- settings file


FULL = """
[cluster]
name = "omtb"              # optional
interval = 0.5
known_hosts = "keys/known_hosts"
accept_new_host_keys = true

[defaults]
user = "admin"
port = 2222
key = "id_ed25519"
sudo = true
python = "/usr/bin/python3"
criu = "/opt/criu/criu"
state_dir = "/var/lib/omview"

[[node]]
id = 1
name = "node1"
address = "10.213.5.1"

[[node]]
id = 2
address = "10.213.5.2"
user = "root"
sudo = false
port = 22

[[node]]
id = 3
address = "local"
"""


def test_settings_happy_path(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(FULL)
    config = load_settings(path)
    assert config.name == "omtb"
    assert config.interval == 0.5
    assert config.known_hosts == str(tmp_path / "keys" / "known_hosts")
    assert config.accept_new_host_keys is True
    assert config.source == str(path)
    assert [n.id for n in config.nodes] == [1, 2, 3]
    one, two, three = config.nodes
    assert one == NodeConfig(
        id=1,
        address="10.213.5.1",
        name="node1",
        user="admin",
        port=2222,
        key=str(tmp_path / "id_ed25519"),
        sudo=True,
        python="/usr/bin/python3",
        criu="/opt/criu/criu",
        state_dir="/var/lib/omview",
    )
    assert (two.user, two.sudo, two.port, two.transport) == ("root", False, 22, "ssh")
    assert three.transport == "local" and three.is_local
    assert config.node(2) is two


def test_settings_minimal_and_localhost_is_ssh(tmp_path: Path) -> None:
    config = parse_settings('[[node]]\nid = 7\naddress = "localhost"\n', str(tmp_path / "c.toml"))
    assert config.interval == 1.0 and config.known_hosts is None and not config.accept_new_host_keys
    (node,) = config.nodes
    assert node == NodeConfig(id=7, address="localhost")
    assert node.transport == "ssh" and node.label == "localhost"


def test_settings_without_nodes_means_this_machine(tmp_path: Path) -> None:
    config = parse_settings("[cluster]\ninterval = 2\n", "c.toml", tmp_path)
    assert config.interval == 2.0
    assert [(n.id, n.address, n.transport) for n in config.nodes] == [(1, "local", "local")]


def test_transport_local_with_another_address(tmp_path: Path) -> None:
    config = parse_settings(
        '[[node]]\nid = 1\naddress = "10.0.0.1"\ntransport = "local"\n', "c.toml", tmp_path
    )
    assert config.nodes[0].is_local


def settings_error(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "/home/u/.config/omview/cluster.toml", tmp_path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    assert settings_error("[cluster]\nintervall = 1.0\n", tmp_path) == (
        '/home/u/.config/omview/cluster.toml: key "cluster.intervall": expected one of name, interval, '
        "known_hosts, accept_new_host_keys, map, found an unknown key"
    )
    assert 'key "node[2].usr"' in settings_error(
        '[[node]]\nid = 1\naddress = "a"\n[[node]]\nid = 2\naddress = "b"\nusr = "x"\n', tmp_path
    )
    assert 'key "clusters"' in settings_error("[clusters]\n", tmp_path)
    assert 'key "defaults.transport"' in settings_error('[defaults]\ntransport = "local"\n', tmp_path)


def test_wrong_types(tmp_path: Path) -> None:
    assert settings_error('[defaults]\nport = "22"\n', tmp_path) == (
        '/home/u/.config/omview/cluster.toml: key "defaults.port": expected a whole number 1..65535, '
        'found the string "22"'
    )
    assert "expected true or false, found the integer 1" in settings_error("[defaults]\nsudo = 1\n", tmp_path)
    assert (
        'key "cluster.interval": expected a number of seconds 0.2..60, found the float 0.1'
        in settings_error("[cluster]\ninterval = 0.1\n", tmp_path)
    )
    assert "found the boolean true" in settings_error("[cluster]\ninterval = true\n", tmp_path)
    assert 'key "defaults.port": expected a whole number 1..65535, found the integer 0' in settings_error(
        "[defaults]\nport = 0\n", tmp_path
    )
    assert 'key "cluster": expected a table [cluster]' in settings_error("cluster = 3\n", tmp_path)
    assert 'key "node": expected [[node]] tables' in settings_error("[node]\nid = 1\n", tmp_path)
    assert 'key "defaults.user": expected a non-empty string, found an empty string' in settings_error(
        '[defaults]\nuser = ""\n', tmp_path
    )


def test_node_checks(tmp_path: Path) -> None:
    node = '[[node]]\nid = {id}\naddress = "{address}"\n'
    assert 'key "node[1].id": expected a whole number 1..65535, found the integer 0' in settings_error(
        node.format(id=0, address="a"), tmp_path
    )
    assert 'key "node[2].id": expected each id once, found 1 again (also node[1].id)' in settings_error(
        node.format(id=1, address="a") + node.format(id=1, address="b"), tmp_path
    )
    assert 'key "node[1].address": expected an IPv4 or IPv6 address' in settings_error(
        node.format(id=1, address="not an address"), tmp_path
    )
    assert 'key "node[1].transport": expected "ssh" or "local", found the string "rsh"' in settings_error(
        node.format(id=1, address="a") + 'transport = "rsh"\n', tmp_path
    )
    assert 'key "node[1].transport": expected "local"' in settings_error(
        node.format(id=1, address="local") + 'transport = "ssh"\n', tmp_path
    )
    assert 'key "node[1].address": expected an address (no map line defines this node), found none' in (
        settings_error("[[node]]\nid = 1\n", tmp_path)
    )
    assert 'key "node[1].id": expected a node id' in settings_error('[[node]]\naddress = "a"\n', tmp_path)


def test_toml_syntax_error_has_file_and_line(tmp_path: Path) -> None:
    message = settings_error("[cluster]\nname = \n", tmp_path)
    assert message.startswith(
        "/home/u/.config/omview/cluster.toml:2: expected valid TOML, found an error at column"
    )


def test_relative_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "cluster.toml"
    path.write_text(
        '[defaults]\nkey = "../keys/id"\n[cluster]\nknown_hosts = "~/kh"\n[[node]]\nid = 1\naddress = "h"\n'
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_settings(path)
    assert config.nodes[0].key == str(tmp_path / "keys" / "id")
    assert config.known_hosts == str(tmp_path / "home" / "kh")


def test_map_reference_merged_with_node_overrides(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "openmosix.map").write_text("1 10.213.5.1 3\n3 10.99.0.3 ALIAS\n")
    path = tmp_path / "cluster.toml"
    path.write_text(
        '[cluster]\nmap = "maps/openmosix.map"\n[defaults]\nuser = "om"\n'
        '[[node]]\nid = 2\nname = "second"\nport = 2202\n'
        '[[node]]\nid = 3\naddress = "10.213.5.33"\n'
        '[[node]]\nid = 9\naddress = "local"\n'
    )
    config = load_settings(path)
    assert [(n.id, n.address, n.name, n.user, n.port, n.aliases) for n in config.nodes] == [
        (1, "10.213.5.1", "", "om", None, []),
        (2, "10.213.5.2", "second", "om", 2202, []),
        (3, "10.213.5.33", "", "om", None, ["10.99.0.3"]),
        (9, "local", "", "om", None, []),
    ]


def test_map_reference_errors_name_the_map_file(tmp_path: Path) -> None:
    (tmp_path / "bad.map").write_text("1 node1 1\n1 node1 zz\n")
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nmap = "bad.map"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{tmp_path / 'bad.map'}:2: expected")


def test_unknown_node_lookup() -> None:
    config = ClusterConfig(nodes=[NodeConfig(1, "a"), NodeConfig(3, "b")], source="x.toml")
    with pytest.raises(UnknownNodeError) as info:
        config.node(2)
    assert str(info.value) == "x.toml: expected a node id of this cluster (1, 3), found 2"
    assert isinstance(info.value, KeyError)


# --------------------------------------------------------------------------- lookup order


@pytest.fixture
def roots(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """An environment whose config home and /etc are empty folders under tmp_path."""
    config_home = tmp_path / "xdg"
    etc = tmp_path / "etc"
    config_home.mkdir()
    etc.mkdir()
    env = {"XDG_CONFIG_HOME": str(config_home), "HOME": str(tmp_path / "home")}
    return env, config_home, etc


def test_nothing_configured_gives_this_machine(roots: tuple[dict[str, str], Path, Path]) -> None:
    env, _, etc = roots
    config = load_cluster(env=env, etc_dir=etc)
    assert config.source == DEFAULT_SOURCE == "this machine (no cluster configured)"
    assert config.nodes == [NodeConfig(id=1, address="local", name=socket.gethostname(), transport="local")]


def test_lookup_order(roots: tuple[dict[str, str], Path, Path], tmp_path: Path) -> None:
    env, config_home, etc = roots
    (etc / "hpc.map").write_text("1 10.0.0.1 1\n")
    assert load_cluster(env=env, etc_dir=etc).source == str(etc / "hpc.map")
    (etc / "mosix.map").write_text("1 10.0.0.2 1\n")
    assert load_cluster(env=env, etc_dir=etc).nodes[0].address == "10.0.0.2"
    (etc / "openmosix.map").write_text("1 10.0.0.3 2\n")
    from_map = load_cluster(env=env, etc_dir=etc)
    assert [n.address for n in from_map.nodes] == ["10.0.0.3", "10.0.0.4"]
    assert all(n.transport == "ssh" for n in from_map.nodes)

    settings = config_home / "omview" / "cluster.toml"
    settings.parent.mkdir()
    settings.write_text('[[node]]\nid = 5\naddress = "10.0.0.5"\n')
    assert load_cluster(env=env, etc_dir=etc).source == str(settings)

    other = tmp_path / "other.map"
    other.write_text("6 10.0.0.6 1\n")
    via_env = load_cluster(env={**env, "OMVIEW_CLUSTER": str(other)}, etc_dir=etc)
    assert via_env.nodes[0].id == 6
    assert via_env.source == f"{other} (from $OMVIEW_CLUSTER)"

    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[[node]]\nid = 8\naddress = "10.0.0.8"\n')
    chosen = load_cluster(explicit, env={**env, "OMVIEW_CLUSTER": str(other)}, etc_dir=etc)
    assert chosen.nodes[0].id == 8 and chosen.source == str(explicit)


def test_lookup_names_every_file_it_looked_for(
    roots: tuple[dict[str, str], Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """omctl's quick path trusts a cached lookup while these files stay as they were: absent ones
    too (a settings file created later wins over the /etc map), and a map the settings name."""
    env, config_home, etc = roots
    settings = config_home / "omview" / "cluster.toml"
    assert load_cluster(env=env, etc_dir=etc).consulted == [
        str(settings), str(etc / "openmosix.map"), str(etc / "mosix.map"), str(etc / "hpc.map")]
    (etc / "mosix.map").write_text("1 10.0.0.2 1\n")
    assert load_cluster(env=env, etc_dir=etc).consulted == [
        str(settings), str(etc / "openmosix.map"), str(etc / "mosix.map")]
    settings.parent.mkdir()
    settings.write_text('[cluster]\nmap = "nodes.map"\n')
    (settings.parent / "nodes.map").write_text("3 10.0.0.3 1\n")
    assert load_cluster(env=env, etc_dir=etc).consulted == [str(settings), str(settings.parent / "nodes.map")]
    other = tmp_path / "other.map"
    other.write_text("6 10.0.0.6 1\n")
    assert load_cluster(env={**env, "OMVIEW_CLUSTER": str(other)}, etc_dir=etc).consulted == [str(other)]
    monkeypatch.chdir(tmp_path)
    assert load_cluster("other.map", env=env, etc_dir=etc).consulted == [str(other)]
    # not part of a configuration's identity: two lookups of the same settings are equal
    assert load_cluster(env=env, etc_dir=etc) == load_settings(settings)


def test_config_home_parameter_and_xdg_default(tmp_path: Path) -> None:
    home = tmp_path / "cfg"
    (home / "omview").mkdir(parents=True)
    (home / "omview" / "cluster.toml").write_text('[cluster]\nname = "p"\n')
    config = load_cluster(env={"HOME": str(tmp_path / "nohome")}, config_home=home, etc_dir=tmp_path)
    assert config.name == "p"
    assert default_settings_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/omview/cluster.toml")
    assert default_settings_path({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.config/omview/cluster.toml"
    )
    assert default_settings_path({"HOME": "/h"}) == Path("/h/.config/omview/cluster.toml")


def test_explicit_missing_file_says_how_to_create_it(
    roots: tuple[dict[str, str], Path, Path], tmp_path: Path
) -> None:
    env, _, etc = roots
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_cluster(missing, env=env, etc_dir=etc)
    assert str(info.value).startswith(
        f"{missing}: expected a cluster settings file, found no such file; create it"
    )
    with pytest.raises(ConfigError, match=r"nope\.map: expected an openMosix map file, found no such file"):
        load_cluster(tmp_path / "nope.map", env=env, etc_dir=etc)
    with pytest.raises(ConfigError, match=r"\(from \$OMVIEW_CLUSTER\): expected an openMosix map"):
        load_cluster(env={**env, "OMVIEW_CLUSTER": str(tmp_path / "gone")}, etc_dir=etc)


def test_explicit_map_is_parsed_as_a_map(tmp_path: Path) -> None:
    path = tmp_path / "cluster.map"
    path.write_text("1 192.168.1.1 2\n2 192.168.9.2 ALIAS\n")
    config = load_cluster(path, env={}, etc_dir=tmp_path)
    assert [(n.id, n.address, n.aliases) for n in config.nodes] == [
        (1, "192.168.1.1", []),
        (2, "192.168.1.2", ["192.168.9.2"]),
    ]


# --------------------------------------------------------------------------- saving


def test_save_load_round_trip(tmp_path: Path) -> None:
    config = ClusterConfig(
        nodes=[
            NodeConfig(
                1, "10.0.0.1", name='odd "name" \\ \t', aliases=["10.9.0.1", "fd00::1"], user="root", port=22
            ),
            NodeConfig(
                2, "node2", key="/k/id", sudo=True, python="python3.11", criu="/opt/criu", state_dir="/s"
            ),
            NodeConfig(3, "10.0.0.3", transport="local"),
            NodeConfig(4, "local", name="me"),
        ],
        interval=0.25,
        known_hosts="/kh",
        accept_new_host_keys=True,
        name="omtb",
    )
    path = tmp_path / "sub" / "cluster.toml"
    save_cluster(config, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["cluster.toml"]  # no temp file left behind
    tomllib.loads(path.read_text())  # valid TOML for any reader, not only ours
    loaded = load_settings(path)
    assert loaded.source == str(path)
    loaded.source = config.source
    assert loaded == config


def test_save_replaces_existing_file_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text("old")
    os.chmod(path, 0o644)
    save_cluster(ClusterConfig(nodes=[NodeConfig(1, "a")]), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert '[[node]]\nid = 1\naddress = "a"\n' in path.read_text()


def test_dump_omits_defaults() -> None:
    text = dump_settings(ClusterConfig(nodes=[NodeConfig(1, "local")]))
    assert "transport" not in text and "python" not in text and "sudo" not in text
    assert "interval = 1.0" in text


# --------------------------------------------------------------------------- omctl references


def test_parse_node_ref() -> None:
    assert parse_node_ref("2:1234") == (2, 1234)
    assert parse_node_ref(" 65535:1 ") == (65535, 1)


@pytest.mark.parametrize("text", ["2", "2:", ":5", "0:5", "2:0", "x:1", "2:1:3", "-1:4", "70000:1", "2:+5"])
def test_parse_node_ref_errors(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_node_ref(text)
    assert str(info.value).startswith('expected NODE:PID such as "2:1234" (NODE 1..65535, PID >= 1), found "')
