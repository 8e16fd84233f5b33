//! Table tests: bad files with the exact error line, good files with their values and defaults.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;

/// This end's key, the peer's key, and a third party's.
fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes([n; 32])
}

fn own_private() -> String {
    key(1).to_base64().as_str().to_owned()
}

fn own_public() -> String {
    key(1).public_key().to_base64()
}

fn peer_public() -> String {
    key(2).public_key().to_base64()
}

/// `PRIV`, `OWNPUB` and `PUB` in a test document stand for the keys above.
fn doc(text: &str) -> String {
    text.replace("PRIV", &own_private())
        .replace("OWNPUB", &own_public())
        .replace("PUB", &peer_public())
}

/// A complete, valid target configuration with the key inline; tests append to or edit it.
const MINIMAL_TARGET: &str = r#"[interface]
private_key = "PRIV"

[peer]
public_key = "PUB"

[fc]
role = "target"
backend = "sim"
fabric = "fabric.sock"
"#;

const CONF: &str = "etc/peer.conf";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(&doc(text), Path::new(CONF))
}

/// A directory of its own under the system temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("fcvpn-config-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `contents` to `name` (parents created) with permission bits `mode`.
    fn write(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Checks every `(document, "LINE: KEY: REASON")` pair against `etc/peer.conf`.
fn check_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (text, want) in cases {
        let want = format!("{CONF}:{want}");
        match parse(text) {
            Ok(_) => failures.push(format!("accepted:\n{text}\nwanted: {want}")),
            Err(e) if e.to_string() != want => {
                failures.push(format!("{text}\n  got:    {e}\n  wanted: {want}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn syntax_errors() {
    check_errors(&[
        ("[interface\n", "1: syntax: unclosed table, expected `]`"),
        (
            "[interface]\nprivate_key = \"PRIV\"\nname = \"fc0\n",
            "3: syntax: invalid basic string, expected `\"`",
        ),
        (
            "[interface]\nname = \"a\"\nname = \"b\"\n",
            "3: syntax: duplicate key",
        ),
        ("[fc]\n[peer]\n[fc]\n", "3: syntax: duplicate key"),
        ("\n\nmtu 5\n", "3: syntax: key with no value, expected `=`"),
    ]);
}

#[test]
fn unknown_keys_and_sections() {
    check_errors(&[
        (
            "[interface]\nprivate_key = \"PRIV\"\nnmae = \"fc0\"\n",
            "3: interface.nmae: unknown key",
        ),
        (
            "[peer]\npublic_key = \"PUB\"\n\n  endpoint = \"x\"\n",
            "4: peer.endpoint: unknown key",
        ),
        (
            &format!("{MINIMAL_TARGET}read_hold = 250\n"),
            "11: fc.read_hold: unknown key",
        ),
        (
            "[interface]\n\n[intreface]\nname = \"x\"\n",
            "3: intreface: unknown section",
        ),
        ("debug = true\n[interface]\n", "1: debug: unknown key"),
        (
            "[interface.extra]\nx = 1\n",
            "1: interface.extra: unknown key",
        ),
        (
            "peer = { public_key = \"PUB\", port = 1 }\n",
            "1: peer.port: unknown key",
        ),
    ]);
}

#[test]
fn wrong_types() {
    check_errors(&[
        (
            "interface = 5\n",
            "1: interface: expected a table, got an integer",
        ),
        (
            "[[peer]]\npublic_key = \"PUB\"\n",
            "1: peer: expected a table, got an array",
        ),
        (
            "[interface]\nmtu = \"big\"\n",
            "2: interface.mtu: expected an integer, got string \"big\"",
        ),
        (
            "[interface]\nmtu = 1500.0\n",
            "2: interface.mtu: expected an integer, got float 1500.0",
        ),
        (
            "[interface]\nmtu = 99999999999999999999\n",
            "2: interface.mtu: integer out of range",
        ),
        (
            "[interface]\nname = 5\n",
            "2: interface.name: expected a string, got integer 5",
        ),
        (
            "[interface]\naddress = \"10.0.0.1/24\"\n",
            "2: interface.address: expected an array, got string \"10.0.0.1/24\"",
        ),
        (
            "[interface]\naddress = [\n  \"10.0.0.1/24\",\n  5,\n]\n",
            "4: interface.address: expected a string, got integer 5",
        ),
        (
            "[fc]\nrole = true\n",
            "2: fc.role: expected a string, got boolean true",
        ),
        (
            "[fc]\nport = 0x5001405fc0000001\n",
            "2: fc.port: expected a string, got integer 5764959777998241793",
        ),
        (
            "[fc]\nport = { naa = \"x\" }\n",
            "2: fc.port: expected a string, got a table",
        ),
    ]);
}

#[test]
fn missing_keys() {
    check_errors(&[
        (
            "",
            "1: interface.private_key_file: missing (or give private_key)",
        ),
        (
            "# comment\n\n[interface]\nname = \"fc0\"\n",
            "3: interface.private_key_file: missing (or give private_key)",
        ),
        (
            "[interface]\nprivate_key = \"PRIV\"\n",
            "1: peer.public_key: missing",
        ),
        (
            "[interface]\nprivate_key = \"PRIV\"\n\n[peer]\n",
            "4: peer.public_key: missing",
        ),
        (
            "[interface]\nprivate_key = \"PRIV\"\n[peer]\npublic_key = \"PUB\"\n",
            "1: fc: missing: a link needs [fc], [ethernet] or both",
        ),
        (
            "[interface]\nprivate_key = \"PRIV\"\n[peer]\npublic_key = \"PUB\"\n[fc]\nbackend = \"sim\"\n",
            "5: fc.role: missing",
        ),
        (
            "[interface]\nprivate_key = \"PRIV\"\n[peer]\npublic_key = \"PUB\"\n[fc]\nrole = \"initiator\"\n",
            "5: fc.backend: missing",
        ),
        (
            "[interface]\nprivate_key = \"PRIV\"\n[peer]\npublic_key = \"PUB\"\n[fc]\nrole = \"initiator\"\nbackend = \"sim\"\n",
            "5: fc.fabric: missing",
        ),
    ]);
}

#[test]
fn key_forms_and_bad_keys() {
    check_errors(&[
        (
            "[interface]\nprivate_key = \"PRIV\"\nprivate_key_file = \"a.key\"\n",
            "3: interface.private_key_file: give private_key_file or private_key, not both",
        ),
        (
            "[interface]\nprivate_key_file = \"a.key\"\nprivate_key = \"PRIV\"\n",
            "3: interface.private_key: give private_key_file or private_key, not both",
        ),
        (
            "[interface]\nprivate_key = \"not base64!\"\n",
            "2: interface.private_key: invalid base64 X25519 key",
        ),
        (
            "[interface]\nprivate_key = \"AAAA\"\n",
            "2: interface.private_key: X25519 key must be 32 bytes of base64 (44 characters)",
        ),
        (
            "[interface]\nprivate_key_file = \"\"\n",
            "2: interface.private_key_file: empty path",
        ),
        (
            "[interface]\nprivate_key = \"PRIV\"\n[peer]\npublic_key = \"PUB=\"\n",
            "4: peer.public_key: invalid base64 X25519 key",
        ),
        (
            "[interface]\nprivate_key = \"PRIV\"\n[peer]\npublic_key = \"OWNPUB\"\n",
            "4: peer.public_key: is this end's own public key; give the other end's",
        ),
    ]);
}

#[test]
fn bad_interface_values() {
    let with = |extra: &str| format!("[interface]\nprivate_key = \"PRIV\"\n{extra}\n");
    let cases: Vec<(String, &str)> = vec![
        (
            with("address = [\"10.77.0.1/33\"]"),
            "3: interface.address: 10.77.0.1/33: prefix longer than 32",
        ),
        (
            with("address = [\"10.77.0.1/24\",\n  \"fd77::1/129\"]"),
            "4: interface.address: fd77::1/129: prefix longer than 128",
        ),
        (
            with("address = [\"10.77.0.1\"]"),
            "3: interface.address: 10.77.0.1: missing /prefix length",
        ),
        (
            with("address = [\"10.77.0.300/24\"]"),
            "3: interface.address: 10.77.0.300/24: not an IP address",
        ),
        (
            with("address = [\"10.77.0.1/x\"]"),
            "3: interface.address: 10.77.0.1/x: prefix length is not a number",
        ),
        (
            with("address = [\n\"10.77.0.1/24\",\n\"10.77.0.1/16\",\n]"),
            "5: interface.address: 10.77.0.1/16: address given twice",
        ),
        (
            with("mode = \"tan\""),
            "3: interface.mode: expected \"tun\" or \"tap\", got \"tan\"",
        ),
        (
            with("mode = \"TUN\""),
            "3: interface.mode: expected \"tun\" or \"tap\", got \"TUN\"",
        ),
        (
            with("padding = \"buckets\""),
            "3: interface.padding: expected \"off\" or \"bucket\", got \"buckets\"",
        ),
        (
            with("compression = \"zstd\""),
            "3: interface.compression: expected \"off\" or \"lz4\", got \"zstd\"",
        ),
        (with("name = \"\""), "3: interface.name: must not be empty"),
        (
            with("name = \"fcvpn0123456789a\""),
            "3: interface.name: \"fcvpn0123456789a\" is longer than 15 bytes",
        ),
        (
            with("name = \"fc 0\""),
            "3: interface.name: \"fc 0\" may only contain letters, digits, '_', '.' and '-'",
        ),
        (
            with("name = \"../x\""),
            "3: interface.name: \"../x\" may only contain letters, digits, '_', '.' and '-'",
        ),
        (
            with("name = \"..\""),
            "3: interface.name: \"..\" is not a valid interface name",
        ),
        (
            with("mtu = 1279"),
            "3: interface.mtu: must be in 1280..=65535, got 1279",
        ),
        (
            with("mtu = 65536"),
            "3: interface.mtu: must be in 1280..=65535, got 65536",
        ),
        (
            with("mtu = -1"),
            "3: interface.mtu: must be in 1280..=65535, got -1",
        ),
        (
            with("mode = \"tap\"\nmtu = 576"),
            "4: interface.mtu: must be in 1280..=65535, got 576",
        ),
        (
            with("max_frame_age_ms = 99"),
            "3: interface.max_frame_age_ms: must be in 100..=60000, got 99",
        ),
        (
            with("max_frame_age_ms = 60001"),
            "3: interface.max_frame_age_ms: must be in 100..=60000, got 60001",
        ),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(t, w)| (t.as_str(), *w)).collect();
    check_errors(&cases);
}

#[test]
fn bad_fc_values() {
    // Line 11 is the first line after MINIMAL_TARGET.
    let with = |extra: &str| format!("{MINIMAL_TARGET}{extra}\n");
    let edit = |from: &str, to: &str| MINIMAL_TARGET.replace(from, to);
    let cases: Vec<(String, &str)> = vec![
        (
            edit("\"target\"", "\"client\""),
            "8: fc.role: expected \"target\" or \"initiator\", got \"client\"",
        ),
        (
            edit("\"sim\"", "\"iscsi\""),
            "9: fc.backend: expected \"sim\", \"tcmu\" or \"sg\", got \"iscsi\"",
        ),
        (edit("\"fabric.sock\"", "\"\""), "10: fc.fabric: empty path"),
        (
            with("port = \"5001405fc0000001\""),
            "11: fc.port: \"5001405fc0000001\" is not a port name (naa. and 16 hex digits, or 8 colon-separated hex pairs)",
        ),
        (
            with("port = \"naa.5001405fc00000\""),
            "11: fc.port: \"naa.5001405fc00000\" is not a port name (naa. and 16 hex digits, or 8 colon-separated hex pairs)",
        ),
        (
            with("port = \"50:01:40:5f:c0:00:00\""),
            "11: fc.port: \"50:01:40:5f:c0:00:00\" is not a port name (naa. and 16 hex digits, or 8 colon-separated hex pairs)",
        ),
        (
            with("port = \"naa.0000000000000000\""),
            "11: fc.port: \"naa.0000000000000000\": the all-zero port name is reserved",
        ),
        (
            with("read_hold_ms = 0"),
            "11: fc.read_hold_ms: must be in 1..=1000, got 0",
        ),
        (
            with("read_hold_ms = 1001"),
            "11: fc.read_hold_ms: must be in 1..=1000, got 1001",
        ),
        (
            with("reads_in_flight = 0"),
            "11: fc.reads_in_flight: must be in 1..=15, got 0",
        ),
        (
            with("reads_in_flight = 16"),
            "11: fc.reads_in_flight: must be in 1..=15, got 16",
        ),
        (
            with("writes_in_flight = 16"),
            "11: fc.writes_in_flight: must be in 1..=15, got 16",
        ),
        (
            with("max_transfer = 4095"),
            "11: fc.max_transfer: must be in 4096..=16777216, got 4095",
        ),
        (
            with("max_transfer = 16777217"),
            "11: fc.max_transfer: must be in 4096..=16777216, got 16777217",
        ),
        (
            with("max_transfer = 65000"),
            "11: fc.max_transfer: must be a multiple of 512, got 65000",
        ),
        (
            with("command_timeout_ms = 1000"),
            "11: fc.command_timeout_ms: must be in 1001..=60000, got 1000",
        ),
        (
            with("command_timeout_ms = 60001"),
            "11: fc.command_timeout_ms: must be in 1001..=60000, got 60001",
        ),
        (
            with("probe_interval_ms = 9"),
            "11: fc.probe_interval_ms: must be in 10..=10000, got 9",
        ),
        (
            with("probe_interval_ms = 10001"),
            "11: fc.probe_interval_ms: must be in 10..=10000, got 10001",
        ),
        (
            with("dead_after_ms = 19"),
            "11: fc.dead_after_ms: must be in 20..=60000, got 19",
        ),
        (
            with("dead_after_ms = 60001"),
            "11: fc.dead_after_ms: must be in 20..=60000, got 60001",
        ),
        (
            with("probe_interval_ms = 100\ndead_after_ms = 199"),
            "12: fc.dead_after_ms: must be at least twice probe_interval_ms (100), got 199",
        ),
        (
            with("probe_interval_ms = 101"),
            "11: fc.probe_interval_ms: 101 needs dead_after_ms of at least 202 (the default is 200)",
        ),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(t, w)| (t.as_str(), *w)).collect();
    check_errors(&cases);
}

#[test]
fn error_accessors() {
    let e = parse("[interface]\nprivate_key = \"PRIV\"\nmtu = 1\n").unwrap_err();
    assert_eq!(e.file(), Path::new(CONF));
    assert_eq!(e.line(), Some(3));
    assert_eq!(e.key(), Some("interface.mtu"));
    assert_eq!(e.reason(), "must be in 1280..=65535, got 1");
}

#[test]
fn minimal_target_takes_the_defaults() {
    let c = parse(MINIMAL_TARGET).unwrap();
    assert_eq!(c.path, Path::new(CONF));
    let i = &c.interface;
    assert_eq!(i.name, "fcvpn0");
    assert_eq!(i.private_key.public_key(), key(1).public_key());
    assert!(i.addresses.is_empty());
    assert_eq!(i.mtu, DEFAULT_TUN_MTU);
    assert_eq!(i.mode, Mode::Tun);
    assert_eq!(i.compression, Compression::Off);
    assert_eq!(i.padding, Padding::Off);
    assert_eq!(i.max_frame_age, Duration::from_secs(3));
    assert_eq!(c.peer.public_key, key(2).public_key());
    let want = Fc {
        role: Role::Target,
        backend: Backend::Sim {
            fabric: PathBuf::from("etc/fabric.sock"),
            line: 10,
        },
        port: default_port_name(&key(1).public_key()),
        read_hold: Duration::from_millis(250),
        reads_in_flight: 8,
        writes_in_flight: 8,
        max_transfer: 1 << 20,
        command_timeout: Duration::from_millis(1500),
        probe_interval: Duration::from_millis(50),
        dead_after: Duration::from_millis(200),
    };
    assert_eq!(c.fc.as_ref(), Some(&want));
    assert_eq!(c.fc.as_ref().unwrap().port >> 60, 5);
}

#[test]
fn minimal_initiator() {
    let text = MINIMAL_TARGET.replace("\"target\"", "\"initiator\"");
    let c = parse(&text).unwrap();
    assert_eq!(c.fc.as_ref().unwrap().role, Role::Initiator);
}

#[test]
fn every_key_set() {
    let text = r#"
[interface]
name = "fc-0.a_b"
private_key = "PRIV"
address = ["10.77.0.1/24", "fd77::1/64", "10.78.0.0/16"]
mtu = 1280
mode = "tap"
compression = "lz4"
max_frame_age_ms = 100

[peer]
public_key = "PUB"

[fc]
role = "initiator"
backend = "sim"
fabric = "/run/fcvpn/fabric.sock"
port = "50:01:40:5F:C0:00:00:01"
read_hold_ms = 1000
reads_in_flight = 15
writes_in_flight = 1
max_transfer = 16_777_216
command_timeout_ms = 60000
probe_interval_ms = 10
dead_after_ms = 20
"#;
    let c = parse(text).unwrap();
    let i = &c.interface;
    assert_eq!(i.name, "fc-0.a_b");
    let addresses: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
    assert_eq!(addresses, ["10.77.0.1/24", "fd77::1/64", "10.78.0.0/16"]);
    assert_eq!(i.mtu, 1280);
    assert_eq!(i.mode, Mode::Tap);
    assert_eq!(i.compression, Compression::Lz4);
    assert_eq!(i.max_frame_age, Duration::from_millis(100));
    let want = Fc {
        role: Role::Initiator,
        backend: Backend::Sim {
            fabric: PathBuf::from("/run/fcvpn/fabric.sock"),
            line: 17,
        },
        port: 0x5001_405f_c000_0001,
        read_hold: Duration::from_secs(1),
        reads_in_flight: 15,
        writes_in_flight: 1,
        max_transfer: 16 << 20,
        command_timeout: Duration::from_secs(60),
        probe_interval: Duration::from_millis(10),
        dead_after: Duration::from_millis(20),
    };
    assert_eq!(c.fc.as_ref(), Some(&want));
}

#[test]
fn tap_defaults_to_9000() {
    let text = MINIMAL_TARGET.replace("[peer]", "mode = \"tap\"\n[peer]");
    let c = parse(&text).unwrap();
    assert_eq!(c.interface.mode, Mode::Tap);
    assert_eq!(c.interface.mtu, DEFAULT_TAP_MTU);
    let text = MINIMAL_TARGET.replace("[peer]", "mode = \"tap\"\nmtu = 65535\n[peer]");
    assert_eq!(parse(&text).unwrap().interface.mtu, 65535);
}

#[test]
fn inline_tables_and_naa_port() {
    let text = r#"
interface = { private_key = "PRIV", name = "fc0" }
peer = { public_key = "PUB" }
fc = { role = "target", backend = "sim", fabric = "f.sock", port = "naa.5001405FC0000002" }
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.interface.name, "fc0");
    assert_eq!(c.fc.as_ref().unwrap().port, 0x5001_405f_c000_0002);
    assert_eq!(
        format_port_naa(c.fc.as_ref().unwrap().port),
        "naa.5001405fc0000002"
    );
}

#[test]
fn fabric_is_relative_to_the_file() {
    let text = MINIMAL_TARGET.replace("fabric.sock", "run/../fab.sock");
    let c = Config::parse(&doc(&text), Path::new("/etc/fcvpn/peer.conf")).unwrap();
    assert_eq!(
        c.fc.as_ref().unwrap().backend,
        Backend::Sim {
            fabric: PathBuf::from("/etc/fcvpn/run/../fab.sock"),
            line: 10,
        }
    );
    let c = Config::parse(&doc(MINIMAL_TARGET), Path::new("peer.conf")).unwrap();
    assert_eq!(
        c.fc.as_ref().unwrap().backend,
        Backend::Sim {
            fabric: PathBuf::from("fabric.sock"),
            line: 10,
        }
    );
}

#[test]
fn debug_hides_the_private_key() {
    let c = parse(MINIMAL_TARGET).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains(&own_private()), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(debug.contains(&peer_public()), "{debug}");
}

/// A target configuration reading its key from `key_file`.
fn with_key_file(key_file: &str) -> String {
    MINIMAL_TARGET.replace(
        "private_key = \"PRIV\"",
        &format!("private_key_file = \"{key_file}\""),
    )
}

#[test]
fn load_reads_a_relative_key_file() {
    let dir = TempDir::new("relative");
    dir.write("etc/keys/a.key", &format!("{}\n", own_private()), 0o600);
    let conf = dir.write("etc/peer.conf", &doc(&with_key_file("keys/a.key")), 0o644);
    let c = Config::load(&conf).unwrap();
    assert_eq!(c.path, conf);
    assert_eq!(c.interface.private_key.public_key(), key(1).public_key());
    assert_eq!(
        c.fc.as_ref().unwrap().backend,
        Backend::Sim {
            fabric: dir.0.join("etc/fabric.sock"),
            line: 10,
        }
    );
}

#[test]
fn load_reads_an_absolute_key_file() {
    let dir = TempDir::new("absolute");
    let key_file = dir.write("a.key", &own_private(), 0o400);
    let text = doc(&with_key_file(key_file.to_str().unwrap()));
    let conf = dir.write("elsewhere/peer.conf", &text, 0o600);
    let c = Config::load(&conf).unwrap();
    assert_eq!(c.interface.private_key.public_key(), key(1).public_key());
}

#[test]
fn load_of_a_missing_file() {
    let dir = TempDir::new("missing-conf");
    let conf = dir.0.join("nope.conf");
    let e = Config::load(&conf).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            conf.display()
        )
    );
    assert_eq!((e.line(), e.key()), (None, None));
}

#[test]
fn key_file_problems() {
    let dir = TempDir::new("key-files");
    let private = own_private();
    let d = dir.0.display();
    // (file name, contents, mode or None for no file, reason after "LINE: KEY: ")
    let cases: &[(&str, &str, Option<u32>, String)] = &[
        (
            "open.key",
            &private,
            Some(0o644),
            format!("{d}/open.key is readable by group or others (mode 0644); chmod 600 it"),
        ),
        (
            "group.key",
            &private,
            Some(0o640),
            format!("{d}/group.key is readable by group or others (mode 0640); chmod 600 it"),
        ),
        (
            "others.key",
            &private,
            Some(0o604),
            format!("{d}/others.key is readable by group or others (mode 0604); chmod 600 it"),
        ),
        (
            "writable.key",
            &private,
            Some(0o620),
            format!("{d}/writable.key is accessible by group or others (mode 0620); chmod 600 it"),
        ),
        (
            "absent.key",
            "",
            None,
            format!("{d}/absent.key: cannot read: No such file or directory (os error 2)"),
        ),
        (
            "garbage.key",
            "this is not a key\n",
            Some(0o600),
            format!("{d}/garbage.key: not a valid key: invalid base64 X25519 key"),
        ),
        (
            "empty.key",
            "",
            Some(0o600),
            format!(
                "{d}/empty.key: not a valid key: X25519 key must be 32 bytes of base64 (44 characters)"
            ),
        ),
        (
            "big.key",
            &"A".repeat(2000),
            Some(0o600),
            format!("{d}/big.key: not a valid key: longer than 1024 bytes"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, contents, mode, reason) in cases {
        if let Some(mode) = mode {
            dir.write(name, contents, *mode);
        }
        let text = doc(&with_key_file(name));
        let conf = dir.0.join("peer.conf");
        let want = format!("{}:2: interface.private_key_file: {reason}", conf.display());
        match Config::parse(&text, &conf) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) if e.to_string() != want => {
                failures.push(format!("{name}\n  got:    {e}\n  wanted: {want}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn key_file_that_is_a_directory() {
    let dir = TempDir::new("key-dir");
    fs::create_dir(dir.0.join("k")).unwrap();
    fs::set_permissions(dir.0.join("k"), fs::Permissions::from_mode(0o700)).unwrap();
    let conf = dir.0.join("peer.conf");
    let e = Config::parse(&doc(&with_key_file("k")), &conf).unwrap_err();
    assert_eq!(
        e.reason(),
        format!("{}/k: cannot read: not a regular file", dir.0.display())
    );
}

const TCMU_TARGET: &str = r#"[interface]
private_key = "PRIV"

[peer]
public_key = "PUB"

[fc]
role = "target"
backend = "tcmu"
fabric_module = "loopback"
port = "naa.5001405fc0000001"
allowed_initiators = ["naa.5001405fc0000002", "50:01:40:5f:c0:00:00:03"]
"#;

#[test]
fn tcmu_and_sg_backends() {
    let cfg = parse(TCMU_TARGET).unwrap();
    let want = Backend::Tcmu {
        fabric_module: FabricModule::Loopback,
        allowed_initiators: vec![0x5001_405f_c000_0002, 0x5001_405f_c000_0003],
    };
    assert_eq!(cfg.fc.as_ref().unwrap().backend, want);
    assert_eq!(cfg.fc.as_ref().unwrap().port, 0x5001_405f_c000_0001);
    let sg = MINIMAL_TARGET
        .replace("role = \"target\"", "role = \"initiator\"")
        .replace(
            "backend = \"sim\"\nfabric = \"fabric.sock\"",
            "backend = \"sg\"",
        );
    assert_eq!(
        parse(&sg).unwrap().fc.unwrap().backend,
        Backend::Sg {
            device: SgDevice::Auto
        }
    );
    let path = sg.replace(
        "backend = \"sg\"",
        "backend = \"sg\"\ndevice = \"/dev/sg3\"",
    );
    assert_eq!(
        parse(&path).unwrap().fc.unwrap().backend,
        Backend::Sg {
            device: SgDevice::Path("/dev/sg3".into())
        }
    );
}

#[test]
fn tcmu_and_sg_errors() {
    let qla_without_port = TCMU_TARGET
        .replace("loopback", "qla2xxx")
        .replace("port = \"naa.5001405fc0000001\"\n", "");
    let sg_on_target = MINIMAL_TARGET.replace(
        "backend = \"sim\"\nfabric = \"fabric.sock\"",
        "backend = \"sg\"",
    );
    let tcmu_on_initiator = TCMU_TARGET.replace("role = \"target\"", "role = \"initiator\"");
    let bad_device = sg_on_target
        .replace("role = \"target\"", "role = \"initiator\"")
        .replace("backend = \"sg\"", "backend = \"sg\"\ndevice = \"sg3\"");
    let cases: Vec<(String, &str)> = vec![
        (
            TCMU_TARGET.replace("loopback", "iscsi"),
            "etc/peer.conf:10: fc.fabric_module: expected \"loopback\" or \"qla2xxx\", got \"iscsi\"",
        ),
        (qla_without_port, "etc/peer.conf:7: fc.port: missing"),
        (
            TCMU_TARGET.replace("\"naa.5001405fc0000002\", ", "\"naa.50\", "),
            "etc/peer.conf:12: fc.allowed_initiators:",
        ),
        (
            TCMU_TARGET.replace(
                "[\"naa.5001405fc0000002\", \"50:01:40:5f:c0:00:00:03\"]",
                "[]",
            ),
            "etc/peer.conf:12: fc.allowed_initiators: at least one",
        ),
        (
            sg_on_target,
            "etc/peer.conf:9: fc.backend: this backend needs role = \"initiator\"",
        ),
        (
            tcmu_on_initiator,
            "etc/peer.conf:9: fc.backend: this backend needs role = \"target\"",
        ),
        (
            bad_device,
            "etc/peer.conf:10: fc.device: expected \"auto\" or a /dev/sgN path",
        ),
    ];
    for (text, want) in cases {
        let got = parse(&text).unwrap_err().to_string();
        assert!(got.starts_with(want), "got {got:?}, want {want:?}");
    }
}

/// A valid Ethernet-only configuration: no `[fc]`.
const ETHERNET_ONLY: &str = r#"[interface]
private_key = "PRIV"

[peer]
public_key = "PUB"

[ethernet]
listen = "10.99.0.1:51900"
endpoint = "10.99.0.2:51900"
"#;

#[test]
fn ethernet_only_link() {
    let c = parse(ETHERNET_ONLY).unwrap();
    assert_eq!(c.fc, None);
    let want = Ethernet {
        listen: "10.99.0.1:51900".parse().unwrap(),
        endpoint: "10.99.0.2:51900".parse().unwrap(),
        max_datagram: 1472,
    };
    assert_eq!(c.ethernet, Some(want));
    assert_eq!(c.interface.mtu, DEFAULT_TUN_MTU);
}

#[test]
fn ethernet_next_to_fc() {
    let text = format!(
        "{MINIMAL_TARGET}\n[ethernet]\nlisten = \"0.0.0.0:51900\"\nendpoint = \"[fd99::2]:51900\"\nmax_datagram = 8972\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.fc.as_ref().unwrap().role, Role::Target);
    let e = c.ethernet.unwrap();
    assert_eq!(e.endpoint, "[fd99::2]:51900".parse().unwrap());
    assert_eq!(e.max_datagram, 8972);
    // Without max_datagram, an IPv6 endpoint gets the IPv6 default.
    let v6 = ETHERNET_ONLY.replace("10.99.0.2:51900", "[fd99::2]:51900");
    assert_eq!(parse(&v6).unwrap().ethernet.unwrap().max_datagram, 1452);
}

#[test]
fn ethernet_errors() {
    let without = |key: &str| {
        ETHERNET_ONLY
            .lines()
            .filter(|l| !l.starts_with(key))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    check_errors(&[
        (&without("listen"), "7: ethernet.listen: missing"),
        (&without("endpoint"), "7: ethernet.endpoint: missing"),
        (
            &ETHERNET_ONLY.replace("10.99.0.2:51900", "10.99.0.2"),
            "9: ethernet.endpoint: \"10.99.0.2\" is not an address and port (like \"192.0.2.1:51900\" or \"[2001:db8::1]:51900\")",
        ),
        (
            &format!("{ETHERNET_ONLY}max_datagram = 100\n"),
            "10: ethernet.max_datagram: must be in 512..=65507, got 100",
        ),
        (
            &format!("{ETHERNET_ONLY}mtu = 1500\n"),
            "10: ethernet.mtu: unknown key",
        ),
        // An [fc] section next to [ethernet] is checked as usual.
        (
            &format!("{ETHERNET_ONLY}\n[fc]\nrole = \"target\"\n"),
            "11: fc.backend: missing",
        ),
    ]);
}

#[test]
fn inline_key_needs_a_private_config_file() {
    let dir = TempDir::new("inline-key");
    let text = doc(MINIMAL_TARGET);
    let mut failures = Vec::new();
    for (mode, how) in [
        (0o644, "readable"),
        (0o640, "readable"),
        (0o620, "accessible"),
    ] {
        let conf = dir.write(&format!("{mode:o}.conf"), &text, mode);
        let want = format!(
            "{c}:2: interface.private_key: an inline key needs a private file, but {c} is {how} by group or others (mode {mode:04o}); chmod 600 it; or use private_key_file",
            c = conf.display()
        );
        match Config::load(&conf) {
            Ok(_) => failures.push(format!("{mode:o}: accepted")),
            Err(e) if e.to_string() != want => {
                failures.push(format!("got:    {e}\n  wanted: {want}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let private = dir.write("private.conf", &text, 0o600);
    assert!(Config::load(&private).is_ok());
    // The same file with the key in a key file instead may be readable by all.
    fs::write(dir.0.join("a.key"), own_private()).unwrap();
    fs::set_permissions(dir.0.join("a.key"), fs::Permissions::from_mode(0o600)).unwrap();
    let open = dir.write("open.conf", &doc(&with_key_file("a.key")), 0o644);
    assert!(Config::load(&open).is_ok());
}

#[test]
fn secrets_owned_by_another_user_are_refused() {
    if !nix::unistd::geteuid().is_root() {
        return; // Only root can give a file away; the check is the same for every user.
    }
    let dir = TempDir::new("owners");
    let inline = dir.write("inline.conf", &doc(MINIMAL_TARGET), 0o600);
    std::os::unix::fs::chown(&inline, Some(4242), None).unwrap();
    let e = Config::load(&inline).unwrap_err();
    assert_eq!(
        (e.line(), e.key()),
        (Some(2), Some("interface.private_key"))
    );
    assert!(
        e.reason()
            .contains("is owned by uid 4242, neither this user (uid 0) nor root; chown it"),
        "{e}"
    );
    let key = dir.write("a.key", &own_private(), 0o600);
    std::os::unix::fs::chown(&key, Some(4242), None).unwrap();
    let conf = dir.write("peer.conf", &doc(&with_key_file("a.key")), 0o644);
    let e = Config::load(&conf).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: interface.private_key_file: {}/a.key is owned by uid 4242, neither this user (uid 0) nor root; chown it",
            conf.display(),
            dir.0.display()
        )
    );
    // Root's own files are accepted whoever runs fcvpn; here root runs it, so chown back.
    std::os::unix::fs::chown(&key, Some(0), None).unwrap();
    assert!(Config::load(&conf).is_ok());
}

#[test]
fn padding_by_bucket() {
    let text = MINIMAL_TARGET.replace("[peer]", "padding = \"bucket\"\n[peer]");
    assert_eq!(parse(&text).unwrap().interface.padding, Padding::Bucket);
}
