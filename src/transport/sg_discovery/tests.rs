//! Discovery over a fake sysfs tree in a temporary directory, with canned INQUIRY answers in
//! place of SG_IO, and the limit arithmetic.

use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::scsi::inquiry::standard_inquiry_data;
use crate::scsi::vpd::device_identification;

/// A directory tree removed on drop.
struct TempTree(PathBuf);

impl TempTree {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fcvpn-sg-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn roots(&self) -> Roots {
        Roots {
            sys: self.0.join("sys"),
            dev: self.0.join("dev"),
        }
    }

    /// An sg class entry `name` whose `device` links to the SCSI device at `sdev` (relative
    /// to sys/devices), with a `type` and optionally a `vendor`.
    fn sg(&self, name: &str, sdev: &str, kind: &str, vendor: Option<&str>) {
        let dev_dir = format!("sys/devices/{sdev}");
        self.write(&format!("{dev_dir}/type"), &format!("{kind}\n"));
        if let Some(v) = vendor {
            self.write(&format!("{dev_dir}/vendor"), &format!("{v}\n"));
        }
        let class = self.0.join("sys/class/scsi_generic").join(name);
        fs::create_dir_all(&class).unwrap();
        symlink(self.0.join(&dev_dir), class.join("device")).unwrap();
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A tcm_loop-like host 0 with a disk, two fcvpn devices, a foreign processor and junk.
fn host0() -> TempTree {
    let t = TempTree::new();
    t.write(
        "sys/devices/pci0/host0/scsi_host/host0/sg_tablesize",
        "256\n",
    );
    t.sg(
        "sg0",
        "pci0/host0/target0:0:0/0:0:0:0",
        "0",
        Some("LIO-ORG "),
    );
    t.write(
        "sys/devices/pci0/host0/target0:0:0/0:0:0:0/block/sda/queue/max_sectors_kb",
        "1280\n",
    );
    t.sg(
        "sg2",
        "pci0/host0/target0:0:2/0:0:2:0",
        "3",
        Some("FCVPN   "),
    );
    t.sg("sg1", "pci0/host0/target0:0:1/0:0:1:0", "3", Some("FCVPN"));
    t.sg("sg10", "pci0/host0/target0:0:3/0:0:3:0", "3", Some("ACME"));
    t.sg("sg11", "pci0/host0/target0:0:4/0:0:4:0", "3", None);
    t.sg("sg12", "pci0/host0/target0:0:5/0:0:5:0", "junk", None);
    t.write("sys/class/scsi_generic/sgx/device/type", "3\n");
    t
}

fn ours() -> DeviceIdentity {
    DeviceIdentity::from_target_public(&[7; 32])
}

fn theirs() -> DeviceIdentity {
    DeviceIdentity::from_target_public(&[8; 32])
}

fn identity_of(id: &DeviceIdentity) -> Identity {
    Identity {
        std_inquiry: standard_inquiry_data().to_vec(),
        vpd83: device_identification(id),
    }
}

fn node(name: &str) -> Node {
    Node {
        name: Some(name.to_owned()),
        path: PathBuf::from(format!("/dev/{name}")),
    }
}

#[test]
fn scan_keeps_fcvpn_processors_in_number_order_and_opens_nothing() {
    let t = host0();
    let scan = scan(&t.roots()).unwrap();
    let names: Vec<_> = scan.nodes.iter().map(|n| n.label()).collect();
    assert_eq!(names, ["sg1", "sg2", "sg11"]);
    assert_eq!(scan.nodes[0].path, t.roots().dev.join("sg1"));
    assert_eq!(
        scan.passed_over,
        [
            "sg0: type 0 (not a processor)",
            "sg10: vendor \"ACME\"",
            "sg12: type unknown",
        ]
    );
}

#[test]
fn no_sg_class_means_the_module_is_not_loaded() {
    let t = TempTree::new();
    assert_eq!(scan(&t.roots()), Err(DiscoveryError::NoScsiGeneric));
    assert_eq!(
        DiscoveryError::NoScsiGeneric.to_string(),
        "no SCSI generic devices: load the sg module"
    );
    let e = search(&SgDevice::Auto, &ours(), &t.roots()).unwrap_err();
    assert_eq!(e, DiscoveryError::NoScsiGeneric);
}

#[test]
fn find_takes_the_device_of_our_peer_and_passes_over_another_targets() {
    let mut probed = Vec::new();
    let found = find(vec![node("sg1"), node("sg2"), node("sg3")], &ours(), |n| {
        probed.push(n.label());
        let id = match n.label().as_str() {
            "sg1" => identity_of(&theirs()),
            _ => identity_of(&ours()),
        };
        Ok((n.label(), id))
    });
    assert_eq!(found.unwrap(), (node("sg2"), "sg2".to_owned()));
    assert_eq!(probed, ["sg1", "sg2"], "stops at the first match");
}

#[test]
fn find_reports_why_each_device_was_not_taken() {
    let disk = Identity {
        std_inquiry: {
            let mut d = standard_inquiry_data();
            d[0] = 0x00;
            d[8..16].copy_from_slice(b"LIO-ORG ");
            d.to_vec()
        },
        vpd83: Vec::new(),
    };
    let err = find(
        vec![node("sg1"), node("sg2"), node("sg3")],
        &ours(),
        |n| match n.label().as_str() {
            "sg1" => Ok(((), identity_of(&theirs()))),
            "sg2" => Ok(((), disk.clone())),
            _ => Err(io::Error::other("INQUIRY: timed out")),
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        [
            "sg1: an fcvpn device of another target (its VPD 83h names another key)",
            "sg2: device type 0x00 (LIO-ORG IP LINK), not a processor",
            "sg3: INQUIRY: timed out",
        ]
    );
}

#[test]
fn mismatch_describes_what_a_device_is() {
    assert_eq!(mismatch(&identity_of(&ours()), &ours()), None);
    let short = Identity {
        std_inquiry: vec![3; 10],
        vpd83: Vec::new(),
    };
    assert_eq!(
        mismatch(&short, &ours()).unwrap(),
        "short INQUIRY data (10 bytes)"
    );
    let mut foreign = identity_of(&ours());
    foreign.std_inquiry[8..16].copy_from_slice(b"ACME    ");
    assert_eq!(
        mismatch(&foreign, &ours()).unwrap(),
        "a processor device of ACME IP LINK"
    );
    let mut absent = identity_of(&ours());
    absent.std_inquiry[0] = 0x7F;
    assert_eq!(
        mismatch(&absent, &ours()).unwrap(),
        "no logical unit connected (peripheral qualifier 3)"
    );
    let mut no_vpd = identity_of(&ours());
    no_vpd.vpd83.clear();
    assert!(
        mismatch(&no_vpd, &ours())
            .unwrap()
            .contains("another target")
    );
}

#[test]
fn auto_search_over_sysfs_without_nodes_says_what_it_saw() {
    let t = host0();
    let e = search(&SgDevice::Auto, &ours(), &t.roots()).unwrap_err();
    let DiscoveryError::NoneFound { serial, seen } = &e else {
        panic!("{e}");
    };
    assert_eq!(serial, ours().serial_str());
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen[0].starts_with("sg0: type 0"));
    assert!(seen[3].starts_with("sg1: No such file"), "{seen:?}");
    assert!(e.to_string().starts_with(&format!(
        "no fcvpn device with serial {} among 6 SCSI generic devices (sg0: type 0",
        ours().serial_str()
    )));
}

#[test]
fn auto_search_with_an_empty_class_waits_for_the_target() {
    let t = TempTree::new();
    fs::create_dir_all(t.roots().class_dir()).unwrap();
    let e = search(&SgDevice::Auto, &ours(), &t.roots()).unwrap_err();
    assert!(
        e.to_string()
            .contains("no SCSI generic devices (is the target up"),
        "{e}"
    );
}

#[test]
fn an_explicit_path_that_is_not_sg_is_unusable() {
    let t = TempTree::new();
    let roots = t.roots();
    let missing = SgDevice::Path(t.0.join("dev/sg9"));
    let e = search(&missing, &ours(), &roots).unwrap_err();
    assert!(matches!(e, DiscoveryError::Unusable { .. }), "{e}");
    assert!(
        e.to_string()
            .ends_with("No such file or directory (os error 2)"),
        "{e}"
    );
    let null = SgDevice::Path(PathBuf::from("/dev/null"));
    let e = search(&null, &ours(), &roots).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("/dev/null: not a SCSI generic device ("),
        "{text}"
    );
}

#[test]
fn not_ours_names_the_device() {
    let e = DiscoveryError::NotOurs {
        path: PathBuf::from("/dev/sg3"),
        why: "device type 0x00 (LIO-ORG RAMDISK), not a processor".into(),
    };
    assert_eq!(
        e.to_string(),
        "/dev/sg3 is not fcvpn's device for this peer: device type 0x00 (LIO-ORG RAMDISK), \
         not a processor"
    );
}

#[test]
fn sysfs_limits_come_from_the_queue_and_the_host() {
    let t = host0();
    let roots = t.roots();
    assert_eq!(sysfs_limits(&roots, "sg0"), (Some(1280), Some(256)));
    assert_eq!(sysfs_limits(&roots, "sg1"), (None, Some(256)));
    assert_eq!(sysfs_limits(&roots, "sg99"), (None, None));
    // On FC the target sits below an rport, not directly below the host.
    t.write(
        "sys/devices/pci1/host5/scsi_host/host5/sg_tablesize",
        "128\n",
    );
    t.sg(
        "sg5",
        "pci1/host5/rport-5:0-0/target5:0:0/5:0:0:0",
        "3",
        None,
    );
    assert_eq!(sysfs_limits(&roots, "sg5"), (None, Some(128)));
}

#[test]
fn device_limit_is_the_smallest_known_limit_in_whole_blocks() {
    let l = |bytes, segs, kb, ssegs| Limits {
        max_sectors_bytes: bytes,
        max_segments: segs,
        sysfs_max_sectors_kb: kb,
        sysfs_max_segments: ssegs,
        page: 4096,
    };
    let cases = [
        // tcm_loop: max_sectors_kb 1280, 256 segments: the segments bind.
        (l(Some(1280 * 1024), Some(256), None, None), 1024 * 1024),
        (l(Some(1280 * 1024), Some(1024), None, None), 1280 * 1024),
        (l(Some(1_000_000), None, None, None), 999_936),
        (l(None, None, Some(512), Some(2048)), 512 * 1024),
        (l(None, None, None, Some(64)), 256 * 1024),
        (l(None, None, None, None), FALLBACK_LIMIT),
        (l(Some(0), Some(0), None, None), FALLBACK_LIMIT),
        (
            l(Some(usize::MAX), Some(usize::MAX), None, None),
            MAX_TRANSFER_LEN,
        ),
        (l(Some(100), None, None, None), 0),
    ];
    for (i, (limits, want)) in cases.into_iter().enumerate() {
        assert_eq!(device_limit(&limits), want, "case {i}: {limits:?}");
    }
}

#[test]
fn preflight_checks_what_can_be_checked_before_the_target_is_up() {
    let t = TempTree::new();
    let roots = t.roots();
    assert_eq!(
        preflight(&SgDevice::Auto, &roots).unwrap_err(),
        "no SCSI generic devices: load the sg module"
    );
    fs::create_dir_all(roots.class_dir()).unwrap();
    assert_eq!(preflight(&SgDevice::Auto, &roots), Ok(()));
    assert_eq!(
        preflight(&SgDevice::Path("/dev/null".into()), &roots),
        Ok(())
    );
    t.write("dev/sg4", "");
    let file = t.0.join("dev/sg4");
    assert_eq!(
        preflight(&SgDevice::Path(file.clone()), &roots).unwrap_err(),
        format!("{}: not a character device", file.display())
    );
    let gone = t.0.join("dev/sg5");
    assert!(
        preflight(&SgDevice::Path(gone), &roots)
            .unwrap_err()
            .contains("No such file")
    );
}

#[test]
fn nodes_are_named_by_file_name_or_sg_major() {
    assert_eq!(
        Node::for_path(Path::new("/dev/sg7")).name.as_deref(),
        Some("sg7")
    );
    assert_eq!(Node::for_path(Path::new("/dev/null")).name, None);
    assert_eq!(sg_number("sg12"), Some(12));
    for bad in ["sg", "sgx", "sg1a", "sda", "sg-1"] {
        assert_eq!(sg_number(bad), None, "{bad}");
    }
}

#[test]
fn a_suspected_impostor_is_probed_last() {
    let nodes = || vec![node("sg0"), node("sg1"), node("sg2")];
    let names = |v: Vec<Node>| -> Vec<String> { v.into_iter().filter_map(|n| n.name).collect() };
    assert_eq!(names(last_resort(nodes(), None)), ["sg0", "sg1", "sg2"]);
    let avoid = Path::new("/dev/sg0");
    assert_eq!(
        names(last_resort(nodes(), Some(avoid))),
        ["sg1", "sg2", "sg0"]
    );
    // Two devices claim to be ours (one copied the identity): the other one is taken first,
    // and the avoided one is still found when it is the only one.
    let mut probed = Vec::new();
    let (taken, ()) = find(last_resort(nodes(), Some(avoid)), &ours(), |n| {
        probed.push(n.label());
        match n.name.as_deref() {
            Some("sg0" | "sg2") => Ok(((), identity_of(&ours()))),
            _ => Ok(((), identity_of(&theirs()))),
        }
    })
    .unwrap();
    assert_eq!(taken.name.as_deref(), Some("sg2"));
    assert_eq!(probed.len(), 2);
    let (only, ()) = find(last_resort(vec![node("sg0")], Some(avoid)), &ours(), |_| {
        Ok(((), identity_of(&ours())))
    })
    .unwrap();
    assert_eq!(only.name.as_deref(), Some("sg0"));
}
