//! Creating, taking over and removing fcvpn's LIO objects, and the checks before any of it.
//!
//! Ownership: when fcvpn creates a backstore it leaves a marker, `/run/fcvpn/<name>.lio`. A
//! later fcvpn that finds the backstore (the first was SIGKILLed and could not clean up) and
//! the marker takes every object over and removes them all on its clean exit. Without the
//! marker the objects were made by someone else (an administrator following
//! `fcvpn up --print-lio`): fcvpn uses them and removes only what it added itself.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::configfs::{Configfs, apply, undo};
use super::{LioPaths, LioSpec, Step};
use crate::config::{FabricModule, format_port_colon, parse_port_name};

/// `CONFIGFS_MAGIC`, the `f_type` statfs reports for configfs.
const CONFIGFS_MAGIC: u64 = 0x6265_6570;

/// Why LIO could not be set up; each names what to do about it when fcvpn knows.
#[derive(Debug, Error)]
pub enum LioError {
    /// A configfs operation failed.
    #[error("{op} {}{value}: {source}{hint}", path.display())]
    Step {
        /// mkdir, write, symlink...
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// ` = value` for writes, else empty.
        value: String,
        /// Why.
        source: io::Error,
        /// `; ` and advice, or empty.
        hint: String,
    },
    /// No configfs mount point: the configfs module is not loaded.
    #[error("configfs is not available ({} does not exist): load it with `modprobe configfs`", .0.display())]
    NoConfigfs(PathBuf),
    /// Mounting configfs failed.
    #[error("mounting configfs on {}: {source}", path.display())]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// A kernel module is missing.
    #[error("{} is missing: load {module} (`modprobe {module}`)", missing.display())]
    NotLoaded {
        /// The module to load.
        module: &'static str,
        /// What showed it missing.
        missing: PathBuf,
    },
    /// qla2xxx is loaded in initiator-only mode.
    #[error(
        "qla2xxx has qlini_mode={0}, which never allows target mode: reload it with qlini_mode=disabled (or dual) (see contrib/lio/README.md)"
    )]
    InitiatorMode(String),
    /// The target port group exists with `generate_node_acls=1`: every initiator that logs
    /// in would reach the LUN, whatever `allowed_initiators` says.
    #[error(
        "{}: demo mode is on (attrib/generate_node_acls = 1), which admits every initiator; turn it off or remove this TPG"
        , .0.display()
    )]
    DemoMode(PathBuf),
    /// The target port group exists with ACLs for initiators not in `allowed_initiators`.
    #[error(
        "{}: has ACLs for initiators not in fc.allowed_initiators ({acls}); remove them or list them"
        , tpg.display()
    )]
    ForeignAcls {
        /// The TPG's directory.
        tpg: PathBuf,
        /// The foreign ACL names, comma-separated.
        acls: String,
    },
    /// No local FC port has the configured name.
    #[error("fc.port {port}: no local FC port has this name (found: {found})")]
    NoFcPort {
        /// The configured port, colon form.
        port: String,
        /// The local ports, or "none".
        found: String,
    },
}

impl LioError {
    /// A failed configfs operation, with advice for the usual causes.
    pub fn step(op: &'static str, path: &Path, source: io::Error) -> Self {
        let hint = hint_for(op, path, &source);
        Self::Step {
            op,
            path: path.to_path_buf(),
            value: String::new(),
            source,
            hint,
        }
    }

    /// Names the value a failed write tried to write.
    pub fn value(mut self, v: &str) -> Self {
        if let Self::Step { value, .. } = &mut self {
            *value = format!(" = {v}");
        }
        self
    }

    /// Whether the failure only says the object is already gone (fine when undoing).
    pub fn is_gone(&self) -> bool {
        match self {
            Self::Step { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
                    || source.raw_os_error() == Some(nix::libc::ENODEV)
            }
            _ => false,
        }
    }
}

fn hint_for(op: &str, path: &Path, e: &io::Error) -> String {
    let text = path.to_string_lossy();
    let hint = if text.contains("/target/loopback") && op == "mkdir" {
        "is tcm_loop loaded? (`modprobe tcm_loop`)"
    } else if text.contains("/target/qla2xxx") && op == "mkdir" {
        "is tcm_qla2xxx loaded, and is this WWPN a local qla2xxx port in target mode? (see contrib/lio/README.md)"
    } else if text.contains("/core/user_") && op == "mkdir" {
        "is target_core_user loaded? (`modprobe target_core_user`)"
    } else if e.kind() == io::ErrorKind::PermissionDenied {
        "fcvpn must run as root"
    } else {
        return String::new();
    };
    format!("; {hint}")
}

/// Mounts configfs on `path` unless it is mounted there already (`ip netns exec` mounts a
/// fresh sysfs, hiding the host's configfs mount, so a target end started in a namespace
/// mounts it again). Returns whether it mounted.
pub fn ensure_configfs(path: &Path) -> Result<bool, LioError> {
    let is_configfs = nix::sys::statfs::statfs(path)
        .is_ok_and(|st| st.filesystem_type().0 as u64 == CONFIGFS_MAGIC);
    if is_configfs {
        return Ok(false);
    }
    if !path.is_dir() {
        return Err(LioError::NoConfigfs(path.to_path_buf()));
    }
    nix::mount::mount(
        Some("configfs"),
        path,
        Some("configfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|source| LioError::Mount {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(true)
}

/// What can be checked before anything is created: configfs (mounted now if it was not),
/// LIO and its user backstore loaded, and for qla2xxx a local port of that name in a mode
/// that allows target mode. Fabric modules themselves load on demand.
pub fn check_prerequisites(paths: &LioPaths, spec: &LioSpec) -> Result<(), LioError> {
    ensure_configfs(&paths.configfs)?;
    check_modules(paths, spec)
}

/// [`check_prerequisites`] after configfs is mounted.
pub fn check_modules(paths: &LioPaths, spec: &LioSpec) -> Result<(), LioError> {
    let core = paths.configfs.join("target/core");
    if !core.is_dir() {
        return Err(LioError::NotLoaded {
            module: "target_core_user",
            missing: core,
        });
    }
    let user = paths.modules.join("target_core_user");
    if !user.is_dir() {
        return Err(LioError::NotLoaded {
            module: "target_core_user",
            missing: user,
        });
    }
    if spec.fabric == FabricModule::Qla2xxx {
        check_qla2xxx(paths, spec.port)?;
    }
    Ok(())
}

fn check_qla2xxx(paths: &LioPaths, port: u64) -> Result<(), LioError> {
    let mode_file = paths.modules.join("qla2xxx/parameters/qlini_mode");
    if let Ok(mode) = std::fs::read_to_string(&mode_file) {
        let mode = mode.trim();
        if mode == "enabled" {
            return Err(LioError::InitiatorMode(mode.to_owned()));
        }
    }
    let hosts = std::fs::read_dir(&paths.fc_host).map_err(|_| LioError::NotLoaded {
        module: "qla2xxx",
        missing: paths.fc_host.clone(),
    })?;
    let mut found = Vec::new();
    for host in hosts.flatten() {
        let Ok(name) = std::fs::read_to_string(host.path().join("port_name")) else {
            continue;
        };
        let Ok(value) = u64::from_str_radix(name.trim().trim_start_matches("0x"), 16) else {
            continue;
        };
        if value == port {
            return Ok(());
        }
        found.push(format_port_colon(value));
    }
    found.sort();
    Err(LioError::NoFcPort {
        port: format_port_colon(port),
        found: if found.is_empty() {
            "none".to_owned()
        } else {
            found.join(", ")
        },
    })
}

/// How the backstore was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackstoreState {
    /// Created (or finished and enabled) by this run: its ring is fresh.
    Created,
    /// Found enabled, left by an fcvpn that did not exit cleanly (or made by hand): its ring
    /// must be retaken (block, reset, unblock).
    Existing,
}

/// fcvpn's LIO objects for one link, and what removing them on a clean exit means.
pub struct LioSetup {
    fs: Arc<dyn Configfs>,
    spec: LioSpec,
    paths: LioPaths,
    /// Every object of the plan is ours (created by an fcvpn).
    owned: bool,
    created_backstore: Vec<Step>,
    created_export: Vec<Step>,
}

impl LioSetup {
    /// Phase 1: creates and enables the backstore, or finds it. On failure, what this call
    /// created is removed again.
    pub fn prepare(
        fs: Arc<dyn Configfs>,
        spec: &LioSpec,
        paths: &LioPaths,
    ) -> Result<(Self, BackstoreState), LioError> {
        check_existing_tpg(&*fs, spec, &paths.configfs)?;
        let dir = spec.backstore_dir(&paths.configfs);
        let marker = marker_path(paths, spec);
        let existed = fs.exists(&dir);
        let enabled = existed && fs.read(&dir.join("enable")).is_ok_and(|v| v.trim() == "1");
        let mut setup = Self {
            owned: !existed || marker.exists(),
            fs,
            spec: spec.clone(),
            paths: paths.clone(),
            created_backstore: Vec::new(),
            created_export: Vec::new(),
        };
        let steps = if enabled {
            // Only what can change on a live device: aborts must reach the ring.
            let tmr = dir.join("attrib/tmr_notification");
            vec![Step::Write {
                path: tmr,
                value: "1".to_owned(),
                undo: None,
            }]
        } else {
            spec.backstore_steps(&paths.configfs)
        };
        if let Err(e) = apply(&*setup.fs, &steps, &mut setup.created_backstore) {
            for e in undo(&*setup.fs, &setup.created_backstore) {
                tracing::warn!("lio: undoing a failed setup: {e}");
            }
            return Err(e);
        }
        if !existed {
            mark(&marker, spec);
        }
        let state = if enabled {
            BackstoreState::Existing
        } else {
            BackstoreState::Created
        };
        Ok((setup, state))
    }

    /// Whether every object of the plan is ours to remove.
    pub fn owned(&self) -> bool {
        self.owned
    }

    /// `action/block_dev`: while blocked, LIO answers new commands BUSY without queueing
    /// them to the ring.
    pub fn block(&self, blocked: bool) -> Result<(), LioError> {
        let path = self.backstore_dir().join("action/block_dev");
        let value = if blocked { "1" } else { "0" };
        self.fs
            .write(&path, value)
            .map_err(|e| LioError::step("write", &path, e).value(value))
    }

    /// `action/reset_ring = 1`: LIO completes every command in the ring with BUSY (the
    /// initiator retries) and sets head and tail to 0.
    pub fn reset_ring(&self) -> Result<(), LioError> {
        let path = self.backstore_dir().join("action/reset_ring");
        self.fs
            .write(&path, "1")
            .map_err(|e| LioError::step("write", &path, e).value("1"))
    }

    /// Phase 2: the target port, LUN and access (what exists is kept). On failure, what
    /// this call created is removed again. With `tcm_loop` this blocks until the kernel's
    /// scan of the new LUN is answered, so the ring must be served meanwhile.
    pub fn export(&mut self) -> Result<(), LioError> {
        let steps = self.spec.export_steps(&self.paths.configfs);
        let mut done = Vec::new();
        let result = apply(&*self.fs, &steps, &mut done);
        if let Err(e) = result {
            for e in undo(&*self.fs, &done) {
                tracing::warn!("lio: undoing a failed export: {e}");
            }
            return Err(e);
        }
        self.created_export.extend(done);
        Ok(())
    }

    /// Removes the export (all of it when owned, else what this run added). The ring must
    /// hold no command by then (block the device and complete them first): removing a LUN
    /// waits for its commands. Returns the failures.
    pub fn remove_export(&mut self) -> Vec<LioError> {
        let steps = if self.owned {
            self.spec.export_steps(&self.paths.configfs)
        } else {
            std::mem::take(&mut self.created_export)
        };
        undo(&*self.fs, &steps)
    }

    /// Removes the backstore (when owned, else only what this run added, and unblocks a
    /// device that stays) and the marker. Close the UIO device first.
    pub fn remove_backstore(self) -> Vec<LioError> {
        if self.owned {
            let steps = self.spec.backstore_steps(&self.paths.configfs);
            let errors = undo(&*self.fs, &steps);
            if errors.is_empty() {
                let _ = std::fs::remove_file(marker_path(&self.paths, &self.spec));
            }
            return errors;
        }
        let mut errors = undo(&*self.fs, &self.created_backstore);
        if self.fs.exists(&self.backstore_dir())
            && let Err(e) = self.block(false)
        {
            errors.push(e);
        }
        errors
    }

    /// Undoes a start that failed: removes only what this run created (a backstore found in
    /// place, perhaps served by another fcvpn, is left alone).
    pub fn abandon(self) -> Vec<LioError> {
        let mut errors = undo(&*self.fs, &self.created_export);
        errors.extend(undo(&*self.fs, &self.created_backstore));
        let created_dir = self
            .created_backstore
            .iter()
            .any(|s| matches!(s, Step::Mkdir { remove: true, .. }));
        if created_dir && errors.is_empty() {
            let _ = std::fs::remove_file(marker_path(&self.paths, &self.spec));
        }
        errors
    }

    fn backstore_dir(&self) -> PathBuf {
        self.spec.backstore_dir(&self.paths.configfs)
    }
}

/// Refuses to reuse a target port group that admits more than `allowed_initiators`: one in
/// demo mode (`attrib/generate_node_acls = 1`, LIO then makes an ACL for any initiator that
/// logs in), or one with an ACL for another initiator. A TPG that does not exist yet passes
/// (fcvpn creates it with exactly the allowed ACLs).
pub fn check_existing_tpg(
    fs: &dyn Configfs,
    spec: &LioSpec,
    configfs: &Path,
) -> Result<(), LioError> {
    let tpg = spec.tpg_dir(configfs);
    if !fs.exists(&tpg) {
        return Ok(());
    }
    let demo = tpg.join("attrib/generate_node_acls");
    if fs.read(&demo).is_ok_and(|v| v.trim() == "1") {
        return Err(LioError::DemoMode(tpg));
    }
    let acls = tpg.join("acls");
    let names = fs.list(&acls).or_else(|e| match e.kind() {
        io::ErrorKind::NotFound => Ok(Vec::new()),
        _ => Err(LioError::step("list", &acls, e)),
    })?;
    let foreign: Vec<String> = names
        .into_iter()
        .filter(|name| parse_port_name(name).is_none_or(|p| !spec.initiators.contains(&p)))
        .collect();
    if !foreign.is_empty() {
        return Err(LioError::ForeignAcls {
            tpg,
            acls: foreign.join(", "),
        });
    }
    Ok(())
}

fn marker_path(paths: &LioPaths, spec: &LioSpec) -> PathBuf {
    paths.run.join(format!("{}.lio", spec.backstore))
}

/// Leaves the ownership marker; failing to is only a warning (a restarted fcvpn will then
/// leave the objects in place on exit).
fn mark(marker: &Path, spec: &LioSpec) {
    let text = format!(
        "LIO backstore {} and its export were created by fcvpn; a restarted fcvpn removes them on exit\n",
        spec.backstore
    );
    let result = marker
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(marker, text));
    if let Err(e) = result {
        tracing::warn!("lio: cannot write {}: {e}", marker.display());
    }
}
