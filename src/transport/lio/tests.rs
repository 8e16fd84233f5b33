//! Plans, their application on a configfs with LIO's rules, takeover and teardown.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fake::FakeConfigfs;
use super::setup::{BackstoreState, check_modules};
use super::*;

const PORT: u64 = 0x5001_405f_c000_0001;
const INIT: u64 = 0x5001_405f_c000_0002;
const INIT2: u64 = 0x2100_0024_ff31_4c48;

fn spec(fabric: FabricModule) -> LioSpec {
    LioSpec {
        backstore: "fcvpn_fc0".into(),
        fabric,
        port: PORT,
        initiators: vec![INIT, INIT2],
        max_transfer: 1 << 20,
    }
}

/// Paths under a fresh temporary directory (configfs itself is the fake).
struct Env {
    dir: PathBuf,
    paths: LioPaths,
}

impl Env {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "fcvpn-lio-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = LioPaths {
            configfs: PathBuf::from("/cfg"),
            uio_class: dir.join("class/uio"),
            dev: dir.join("dev"),
            modules: dir.join("module"),
            fc_host: dir.join("class/fc_host"),
            run: dir.join("run"),
        };
        Self { dir, paths }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fake() -> Arc<FakeConfigfs> {
    Arc::new(FakeConfigfs::new(Path::new("/cfg")))
}

#[test]
fn names_and_control_string() {
    let s = spec(FabricModule::Loopback);
    assert_eq!(s.dev_config(), "fcvpn/fcvpn_fc0");
    assert_eq!(s.uio_name(), "tcm-user/0/fcvpn_fc0/fcvpn/fcvpn_fc0");
    assert_eq!(
        s.control(),
        "dev_size=1048576,dev_config=fcvpn/fcvpn_fc0,hw_max_sectors=2048,hw_block_size=512"
    );
    let cfs = Path::new("/sys/kernel/config");
    assert_eq!(
        s.backstore_dir(cfs),
        Path::new("/sys/kernel/config/target/core/user_0/fcvpn_fc0")
    );
    assert_eq!(
        s.tpg_dir(cfs),
        Path::new("/sys/kernel/config/target/loopback/naa.5001405fc0000001/tpgt_1")
    );
    assert_eq!(
        spec(FabricModule::Qla2xxx).tpg_dir(cfs),
        Path::new("/sys/kernel/config/target/qla2xxx/50:01:40:5f:c0:00:00:01/tpgt_1")
    );
}

#[test]
fn spec_from_a_config_file() {
    let text = r#"[interface]
name = "fc7"
private_key = "PRIV"
[peer]
public_key = "PUB"
[fc]
role = "target"
backend = "tcmu"
fabric_module = "qla2xxx"
port = "21:00:00:24:ff:31:4c:49"
allowed_initiators = ["naa.5001405fc0000002"]
max_transfer = 65536
"#;
    use crate::crypto::PrivateKey;
    let text = text
        .replace("PRIV", &PrivateKey::from_bytes([1; 32]).to_base64())
        .replace(
            "PUB",
            &PrivateKey::from_bytes([2; 32]).public_key().to_base64(),
        );
    let cfg = crate::config::Config::parse(&text, Path::new("t.conf")).unwrap();
    let s = LioSpec::from_config(&cfg).unwrap();
    assert_eq!(s.backstore, "fcvpn_fc7");
    assert_eq!(s.fabric, FabricModule::Qla2xxx);
    assert_eq!(s.port, 0x2100_0024_ff31_4c49);
    assert_eq!(s.initiators, [INIT]);
    assert!(s.control().contains("hw_max_sectors=128"));
}

fn run(fs: &FakeConfigfs, steps: &[Step]) -> Vec<String> {
    let mut done = Vec::new();
    apply(fs, steps, &mut done).unwrap();
    fs.take_log()
}

#[test]
fn loopback_setup_and_teardown_in_order() {
    let env = Env::new();
    let fs = fake();
    let s = spec(FabricModule::Loopback);
    let (mut lio, state) = LioSetup::prepare(fs.clone(), &s, &env.paths).unwrap();
    assert_eq!(state, BackstoreState::Created);
    assert!(lio.owned());
    let bs = "/cfg/target/core/user_0/fcvpn_fc0";
    assert_eq!(
        fs.take_log(),
        [
            "mkdir /cfg/target/core/user_0".to_owned(),
            format!("mkdir {bs}"),
            format!("write {bs}/control = {}", s.control()),
            format!("write {bs}/attrib/tmr_notification = 1"),
            format!("write {bs}/enable = 1"),
        ]
    );
    assert!(
        env.paths.run.join("fcvpn_fc0.lio").exists(),
        "ownership marker"
    );
    lio.export().unwrap();
    let tpg = "/cfg/target/loopback/naa.5001405fc0000001/tpgt_1";
    assert_eq!(
        fs.take_log(),
        [
            "mkdir /cfg/target/loopback".to_owned(),
            "mkdir /cfg/target/loopback/naa.5001405fc0000001".to_owned(),
            format!("mkdir {tpg}"),
            format!("mkdir {tpg}/lun/lun_0"),
            format!("write {tpg}/nexus = naa.5001405fc0000002"),
            format!("ln -s {bs} {tpg}/lun/lun_0/fcvpn_fc0"),
        ]
    );
    lio.block(true).unwrap();
    assert_eq!(
        fs.attr(Path::new(&format!("{bs}/action/block_dev")))
            .unwrap(),
        "blocked"
    );
    fs.take_log();
    assert!(lio.remove_export().is_empty());
    assert_eq!(
        fs.take_log(),
        [
            format!("rm {tpg}/lun/lun_0/fcvpn_fc0"),
            format!("write {tpg}/nexus = NULL"),
            format!("rmdir {tpg}/lun/lun_0"),
            format!("rmdir {tpg}"),
            "rmdir /cfg/target/loopback/naa.5001405fc0000001".to_owned(),
        ]
    );
    assert!(lio.remove_backstore().is_empty());
    assert_eq!(fs.take_log(), [format!("rmdir {bs}")]);
    assert!(!env.paths.run.join("fcvpn_fc0.lio").exists());
    let left: Vec<PathBuf> = fs.paths();
    assert_eq!(
        left,
        [
            "/cfg",
            "/cfg/target",
            "/cfg/target/core",
            "/cfg/target/core/user_0",
            "/cfg/target/loopback"
        ]
        .map(PathBuf::from)
    );
}

#[test]
fn qla2xxx_export_has_an_acl_per_initiator_and_enables_last() {
    let fs = FakeConfigfs::new(Path::new("/cfg"));
    let s = spec(FabricModule::Qla2xxx);
    run(&fs, &s.backstore_steps(Path::new("/cfg")));
    let log = run(&fs, &s.export_steps(Path::new("/cfg")));
    let tpg = "/cfg/target/qla2xxx/50:01:40:5f:c0:00:00:01/tpgt_1";
    let acl = |i: &str| format!("{tpg}/acls/{i}");
    assert_eq!(
        log,
        [
            "mkdir /cfg/target/qla2xxx".to_owned(),
            "mkdir /cfg/target/qla2xxx/50:01:40:5f:c0:00:00:01".to_owned(),
            format!("mkdir {tpg}"),
            format!("mkdir {tpg}/lun/lun_0"),
            format!("ln -s /cfg/target/core/user_0/fcvpn_fc0 {tpg}/lun/lun_0/fcvpn_fc0"),
            format!("mkdir {}", acl("50:01:40:5f:c0:00:00:02")),
            format!("mkdir {}/lun_0", acl("50:01:40:5f:c0:00:00:02")),
            format!(
                "ln -s {tpg}/lun/lun_0 {}/lun_0/lun_0",
                acl("50:01:40:5f:c0:00:00:02")
            ),
            format!("mkdir {}", acl("21:00:00:24:ff:31:4c:48")),
            format!("mkdir {}/lun_0", acl("21:00:00:24:ff:31:4c:48")),
            format!(
                "ln -s {tpg}/lun/lun_0 {}/lun_0/lun_0",
                acl("21:00:00:24:ff:31:4c:48")
            ),
            format!("write {tpg}/enable = 1"),
        ]
    );
    let errors = undo(&fs, &s.export_steps(Path::new("/cfg")));
    assert!(errors.is_empty(), "{errors:?}");
    let log = fs.take_log();
    assert_eq!(log[0], format!("write {tpg}/enable = 0"));
    assert_eq!(
        log.last().unwrap(),
        "rmdir /cfg/target/qla2xxx/50:01:40:5f:c0:00:00:01"
    );
}

#[test]
fn a_killed_fcvpns_objects_are_taken_over_and_removed_on_exit() {
    let env = Env::new();
    let fs = fake();
    let s = spec(FabricModule::Loopback);
    let (mut first, _) = LioSetup::prepare(fs.clone(), &s, &env.paths).unwrap();
    first.export().unwrap();
    drop(first); // SIGKILL: no teardown
    fs.take_log();

    let (mut second, state) = LioSetup::prepare(fs.clone(), &s, &env.paths).unwrap();
    assert_eq!(state, BackstoreState::Existing);
    assert!(second.owned());
    second.export().unwrap();
    assert!(fs.take_log().is_empty(), "everything was in place");
    second.block(true).unwrap();
    second.reset_ring().unwrap();
    second.block(false).unwrap();
    assert_eq!(fs.take_log().len(), 3);
    assert!(second.remove_export().is_empty());
    assert!(second.remove_backstore().is_empty());
    assert_eq!(fs.paths().len(), 5, "{:?}", fs.paths());
}

#[test]
fn hand_made_objects_are_used_and_left_in_place() {
    let env = Env::new();
    let fs = fake();
    let s = spec(FabricModule::Loopback);
    run(&fs, &s.backstore_steps(Path::new("/cfg")));
    run(&fs, &s.export_steps(Path::new("/cfg")));
    let before = fs.paths();

    let (mut lio, state) = LioSetup::prepare(fs.clone(), &s, &env.paths).unwrap();
    assert_eq!(state, BackstoreState::Existing);
    assert!(!lio.owned());
    lio.export().unwrap();
    lio.block(true).unwrap();
    fs.take_log();
    assert!(lio.remove_export().is_empty());
    assert!(lio.remove_backstore().is_empty());
    assert_eq!(
        fs.take_log(),
        ["write /cfg/target/core/user_0/fcvpn_fc0/action/block_dev = 0"],
        "only unblocked"
    );
    assert_eq!(fs.paths(), before);
}

#[test]
fn a_hand_made_backstore_keeps_only_its_own_export_removed() {
    let env = Env::new();
    let fs = fake();
    let s = spec(FabricModule::Loopback);
    run(&fs, &s.backstore_steps(Path::new("/cfg")));
    let (mut lio, _) = LioSetup::prepare(fs.clone(), &s, &env.paths).unwrap();
    lio.export().unwrap();
    assert!(lio.remove_export().is_empty());
    assert!(lio.remove_backstore().is_empty());
    assert!(fs.exists(&s.backstore_dir(Path::new("/cfg"))));
    assert!(!fs.exists(&s.wwn_dir(Path::new("/cfg"))));
}

#[test]
fn a_backstore_left_disabled_is_configured_and_enabled() {
    let env = Env::new();
    let fs = fake();
    let s = spec(FabricModule::Loopback);
    let steps = s.backstore_steps(Path::new("/cfg"));
    run(&fs, &steps[..2]); // mkdir only: killed before enabling
    let (_, state) = LioSetup::prepare(fs.clone(), &s, &env.paths).unwrap();
    assert_eq!(state, BackstoreState::Created);
    let enable = s.backstore_dir(Path::new("/cfg")).join("enable");
    assert_eq!(fs.attr(&enable).unwrap(), "1");
}

#[test]
fn failures_undo_what_was_created_and_name_the_step() {
    let env = Env::new();
    let fs = fake();
    let s = spec(FabricModule::Loopback);
    fs.fail_on("/nexus");
    let (mut lio, _) = LioSetup::prepare(fs.clone(), &s, &env.paths).unwrap();
    let err = lio.export().unwrap_err().to_string();
    assert!(
        err.contains(
            "write /cfg/target/loopback/naa.5001405fc0000001/tpgt_1/nexus = naa.5001405fc0000002"
        ),
        "{err}"
    );
    assert!(
        !fs.exists(&s.wwn_dir(Path::new("/cfg"))),
        "the partial export was removed"
    );
    assert!(
        fs.exists(Path::new("/cfg/target/loopback")),
        "shared parents stay"
    );

    let fs = fake();
    fs.fail_on("/enable");
    let err = LioSetup::prepare(fs.clone(), &s, &env.paths).err().unwrap();
    assert!(err.to_string().contains("enable = 1"), "{err}");
    assert!(!fs.exists(&s.backstore_dir(Path::new("/cfg"))));

    let fs = FakeConfigfs::new(Path::new("/cfg"));
    fs.fail_on("qla2xxx/50:01:40:5f:c0:00:00:01");
    let mut done = Vec::new();
    let steps = spec(FabricModule::Qla2xxx).export_steps(Path::new("/cfg"));
    let err = apply(&fs, &steps, &mut done).unwrap_err().to_string();
    assert!(err.contains("tcm_qla2xxx loaded"), "{err}");
}

#[test]
fn undo_tolerates_what_is_already_gone() {
    let fs = FakeConfigfs::new(Path::new("/cfg"));
    let s = spec(FabricModule::Loopback);
    let errors = undo(&fs, &s.export_steps(Path::new("/cfg")));
    assert!(errors.is_empty(), "{errors:?}");
    let errors = undo(&fs, &s.backstore_steps(Path::new("/cfg")));
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn prerequisites_name_the_module_to_load() {
    let env = Env::new();
    let s = spec(FabricModule::Loopback);
    let mut paths = env.paths.clone();
    paths.configfs = env.dir.join("config");
    let err = check_modules(&paths, &s).unwrap_err().to_string();
    assert!(
        err.contains("target/core is missing: load target_core_user"),
        "{err}"
    );
    std::fs::create_dir_all(paths.configfs.join("target/core")).unwrap();
    let err = check_modules(&paths, &s).unwrap_err().to_string();
    assert!(err.contains("module/target_core_user is missing"), "{err}");
    std::fs::create_dir_all(paths.modules.join("target_core_user")).unwrap();
    check_modules(&paths, &s).unwrap();

    let q = spec(FabricModule::Qla2xxx);
    let err = check_modules(&paths, &q).unwrap_err().to_string();
    assert!(err.contains("load qla2xxx"), "{err}");
    let host = paths.fc_host.join("host3");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("port_name"), "0x21000024ff314c48\n").unwrap();
    let err = check_modules(&paths, &q).unwrap_err().to_string();
    assert_eq!(
        err,
        "fc.port 50:01:40:5f:c0:00:00:01: no local FC port has this name (found: 21:00:00:24:ff:31:4c:48)"
    );
    std::fs::write(host.join("port_name"), "0x5001405fc0000001\n").unwrap();
    check_modules(&paths, &q).unwrap();
    let params = paths.modules.join("qla2xxx/parameters");
    std::fs::create_dir_all(&params).unwrap();
    std::fs::write(params.join("qlini_mode"), "enabled\n").unwrap();
    let err = check_modules(&paths, &q).unwrap_err().to_string();
    assert!(err.contains("qlini_mode=enabled"), "{err}");
    for ok in ["disabled", "dual", "exclusive"] {
        std::fs::write(params.join("qlini_mode"), ok).unwrap();
        check_modules(&paths, &q).unwrap();
    }
}

#[test]
fn the_printed_script_creates_in_order_and_documents_the_teardown() {
    let s = spec(FabricModule::Loopback);
    let text = script(&s, &LioPaths::system());
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let bs = "/sys/kernel/config/target/core/user_0/fcvpn_fc0";
    let tpg = "/sys/kernel/config/target/loopback/naa.5001405fc0000001/tpgt_1";
    assert_eq!(
        lines,
        [
            "set -e".to_owned(),
            "mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config"
                .to_owned(),
            "mkdir -p /sys/kernel/config/target/core/user_0".to_owned(),
            format!("mkdir -p {bs}"),
            format!("echo {} > {bs}/control", s.control()),
            format!("echo 1 > {bs}/attrib/tmr_notification"),
            format!("echo 1 > {bs}/enable"),
            "mkdir -p /sys/kernel/config/target/loopback".to_owned(),
            "mkdir -p /sys/kernel/config/target/loopback/naa.5001405fc0000001".to_owned(),
            format!("mkdir -p {tpg}"),
            format!("mkdir -p {tpg}/lun/lun_0"),
            format!("echo naa.5001405fc0000002 > {tpg}/nexus"),
            format!("ln -s {bs} {tpg}/lun/lun_0/fcvpn_fc0"),
        ]
    );
    let teardown: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("# Teardown"))
        .skip(1)
        .collect();
    assert_eq!(
        teardown,
        [
            format!("#   echo 1 > {bs}/action/block_dev   (LIO answers BUSY; stop fcvpn)"),
            format!("#   rm {tpg}/lun/lun_0/fcvpn_fc0"),
            format!("#   echo NULL > {tpg}/nexus"),
            format!("#   rmdir {tpg}/lun/lun_0"),
            format!("#   rmdir {tpg}"),
            "#   rmdir /sys/kernel/config/target/loopback/naa.5001405fc0000001".to_owned(),
            format!("#   rmdir {bs}"),
        ]
    );
    assert!(text.contains("tcm-user/0/fcvpn_fc0/fcvpn/fcvpn_fc0"));
}

/// Creates the TPG of `s` by hand, as an administrator would have.
fn hand_made_tpg(fs: &FakeConfigfs, s: &LioSpec) -> PathBuf {
    let cfs = Path::new("/cfg");
    let tpg = s.tpg_dir(cfs);
    for dir in [s.wwn_dir(cfs).parent().unwrap(), &s.wwn_dir(cfs), &tpg] {
        fs.mkdir(dir).unwrap();
    }
    tpg
}

#[test]
fn a_tpg_in_demo_mode_is_refused_before_anything_is_created() {
    let env = Env::new();
    let fs = fake();
    let s = spec(FabricModule::Qla2xxx);
    let tpg = hand_made_tpg(&fs, &s);
    fs.write(&tpg.join("attrib/generate_node_acls"), "1")
        .unwrap();
    fs.take_log();
    let e = LioSetup::prepare(fs.clone(), &s, &env.paths)
        .err()
        .expect("refused");
    assert!(matches!(&e, LioError::DemoMode(p) if *p == tpg), "{e}");
    assert!(e.to_string().contains("generate_node_acls = 1"), "{e}");
    assert_eq!(fs.take_log(), Vec::<String>::new(), "nothing created");
}

#[test]
fn a_tpg_with_foreign_acls_is_refused_and_one_with_ours_is_reused() {
    let env = Env::new();
    let fs = fake();
    let s = spec(FabricModule::Qla2xxx);
    let tpg = hand_made_tpg(&fs, &s);
    fs.mkdir(&tpg.join("acls/50:01:40:5f:c0:00:00:02")).unwrap();
    assert!(LioSetup::prepare(fs.clone(), &s, &env.paths).is_ok());
    for (i, name) in ["21:00:00:24:ff:99:99:99", "not-a-wwpn"].iter().enumerate() {
        fs.mkdir(&tpg.join("acls").join(name)).unwrap();
        let e = LioSetup::prepare(fs.clone(), &s, &env.paths)
            .err()
            .expect("refused");
        let LioError::ForeignAcls { acls, .. } = &e else {
            panic!("{e}");
        };
        let want = [
            "21:00:00:24:ff:99:99:99",
            "21:00:00:24:ff:99:99:99, not-a-wwpn",
        ];
        assert_eq!(acls, want[i]);
    }
}
