//! LIO configuration through configfs: the objects fcvpn's target end needs, as a plan of
//! steps that can be applied, undone in reverse, or printed as shell commands.
//!
//! Two phases, in this order:
//! 1. **The backstore**: the TCMU user device `target/core/user_0/fcvpn_<ifname>`, whose
//!    `control` names its `dev_config` (`fcvpn/<name>`, which also names its UIO device
//!    `tcm-user/0/<name>/fcvpn/<name>`) and limits; `attrib/tmr_notification = 1` so aborts
//!    reach the ring; `enable = 1`, which creates `/dev/uioN`.
//! 2. **The export**, once the handler serves the ring (linking the LUN makes the initiator
//!    side scan it, and the scan's INQUIRY waits for the handler): the target port on the
//!    fabric module, LUN 0 linked to the backstore, and who may use it: for `tcm_loop` the
//!    nexus (the first allowed initiator), for `tcm_qla2xxx` one ACL per allowed initiator
//!    mapping LUN 0, then `tpgt_1/enable = 1`.
//!
//! Port names: the configuration holds them as `u64`; `tcm_loop` wants `naa.` and 16 hex
//! digits, `tcm_qla2xxx` the colon form.

mod configfs;
#[cfg(test)]
mod fake;
mod setup;
mod shell;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::config::{Backend, Config, FabricModule, format_port_colon, format_port_naa};

pub use configfs::{Configfs, SystemConfigfs, apply, undo};
pub use setup::{BackstoreState, LioError, LioSetup, check_prerequisites, ensure_configfs};
pub use shell::script;

/// The user backstore HBA fcvpn's devices live under (`target/core/user_0`).
pub const USER_HBA: u32 = 0;
/// `dev_size` of the backstore. A processor device has no capacity, but the user backstore
/// wants a size (LIO derives a block count from it); 1 MiB is as good as any.
pub const DEV_SIZE: u64 = 1 << 20;
/// The block size the backstore reports (`hw_block_size`); `hw_max_sectors` counts these.
pub const BLOCK_SIZE: usize = 512;
/// The target portal group fcvpn uses.
pub const TPGT: u32 = 1;

/// Where the kernel interfaces are; [`LioPaths::system`] outside tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LioPaths {
    /// configfs (`/sys/kernel/config`).
    pub configfs: PathBuf,
    /// The UIO class (`/sys/class/uio`).
    pub uio_class: PathBuf,
    /// Device nodes (`/dev`).
    pub dev: PathBuf,
    /// Loaded modules (`/sys/module`).
    pub modules: PathBuf,
    /// FC host ports (`/sys/class/fc_host`).
    pub fc_host: PathBuf,
    /// Where fcvpn marks the LIO objects it created (`/run/fcvpn`), so that a restarted
    /// fcvpn knows they are its own to remove.
    pub run: PathBuf,
}

impl LioPaths {
    /// The real locations.
    pub fn system() -> Self {
        Self {
            configfs: PathBuf::from("/sys/kernel/config"),
            uio_class: PathBuf::from("/sys/class/uio"),
            dev: PathBuf::from("/dev"),
            modules: PathBuf::from("/sys/module"),
            fc_host: PathBuf::from("/sys/class/fc_host"),
            run: PathBuf::from(crate::control::RUN_DIR),
        }
    }
}

/// One configfs operation of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create a directory (a configfs object) unless it exists. `remove`: whether undoing
    /// the plan removes it (not for shared parents such as `core/user_0`).
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// Whether undo removes it.
        remove: bool,
    },
    /// Write an attribute unless it already reads back as `value`. `undo`: what undoing
    /// writes back, if anything (removing the object undoes the rest).
    Write {
        /// The attribute file.
        path: PathBuf,
        /// The value.
        value: String,
        /// The value undo writes.
        undo: Option<String>,
    },
    /// Create the symbolic link `link` to `target` unless it exists.
    Symlink {
        /// What the link points to.
        target: PathBuf,
        /// The link.
        link: PathBuf,
    },
}

/// What fcvpn configures in LIO for one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LioSpec {
    /// The backstore's name (`fcvpn_<ifname>`).
    pub backstore: String,
    /// The fabric module of the target port.
    pub fabric: FabricModule,
    /// The local target port name.
    pub port: u64,
    /// Initiators allowed in (for loopback, the first is the nexus).
    pub initiators: Vec<u64>,
    /// Largest transfer per command, in bytes (a multiple of 512).
    pub max_transfer: usize,
}

impl LioSpec {
    /// The spec for link `ifname`'s target end (its backstore is `fcvpn_<ifname>`).
    pub fn new(
        ifname: &str,
        fabric: FabricModule,
        port: u64,
        initiators: Vec<u64>,
        max_transfer: usize,
    ) -> Self {
        Self {
            backstore: format!("fcvpn_{ifname}"),
            fabric,
            port,
            initiators,
            max_transfer,
        }
    }

    /// The spec for a target end with `backend = "tcmu"`, or `None` for any other backend (or
    /// an Ethernet-only link).
    pub fn from_config(cfg: &Config) -> Option<Self> {
        let fc = cfg.fc.as_ref()?;
        let Backend::Tcmu {
            fabric_module,
            allowed_initiators,
        } = &fc.backend
        else {
            return None;
        };
        Some(Self::new(
            &cfg.interface.name,
            *fabric_module,
            fc.port,
            allowed_initiators.clone(),
            fc.max_transfer,
        ))
    }

    /// `dev_config` of the backstore: `fcvpn/<name>`.
    pub fn dev_config(&self) -> String {
        format!("fcvpn/{}", self.backstore)
    }

    /// The name of the backstore's UIO device, as `/sys/class/uio/uioN/name` shows it.
    pub fn uio_name(&self) -> String {
        format!(
            "tcm-user/{USER_HBA}/{}/{}",
            self.backstore,
            self.dev_config()
        )
    }

    /// What is written to the backstore's `control`.
    pub fn control(&self) -> String {
        format!(
            "dev_size={DEV_SIZE},dev_config={},hw_max_sectors={},hw_block_size={BLOCK_SIZE}",
            self.dev_config(),
            self.max_transfer / BLOCK_SIZE
        )
    }

    /// `target/core/user_0/<name>`.
    pub fn backstore_dir(&self, configfs: &Path) -> PathBuf {
        configfs
            .join("target/core")
            .join(format!("user_{USER_HBA}"))
            .join(&self.backstore)
    }

    /// The target port's directory on its fabric module.
    pub fn wwn_dir(&self, configfs: &Path) -> PathBuf {
        let fabric = configfs.join("target").join(fabric_dir(self.fabric));
        match self.fabric {
            FabricModule::Loopback => fabric.join(format_port_naa(self.port)),
            FabricModule::Qla2xxx => fabric.join(format_port_colon(self.port)),
        }
    }

    /// `<wwn>/tpgt_1`.
    pub fn tpg_dir(&self, configfs: &Path) -> PathBuf {
        self.wwn_dir(configfs).join(format!("tpgt_{TPGT}"))
    }

    /// Phase 1: create and enable the backstore.
    pub fn backstore_steps(&self, configfs: &Path) -> Vec<Step> {
        let dir = self.backstore_dir(configfs);
        let hba = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        vec![
            mkdir(hba, false),
            mkdir(dir.clone(), true),
            write(dir.join("control"), self.control(), None),
            write(dir.join("attrib/tmr_notification"), "1", None),
            write(dir.join("enable"), "1", None),
        ]
    }

    /// Phase 2: the target port, LUN 0 and who may reach it.
    pub fn export_steps(&self, configfs: &Path) -> Vec<Step> {
        let wwn = self.wwn_dir(configfs);
        let fabric = wwn.parent().map(Path::to_path_buf).unwrap_or_default();
        let tpg = self.tpg_dir(configfs);
        let lun = tpg.join("lun/lun_0");
        let mut steps = vec![
            mkdir(fabric, false),
            mkdir(wwn, true),
            mkdir(tpg.clone(), true),
            mkdir(lun.clone(), true),
        ];
        let link_lun = Step::Symlink {
            target: self.backstore_dir(configfs),
            link: lun.join(&self.backstore),
        };
        match self.fabric {
            FabricModule::Loopback => {
                // The nexus must exist before the LUN appears: the scan runs through it.
                let nexus = self.initiators.first().copied().unwrap_or(0);
                steps.push(write(
                    tpg.join("nexus"),
                    format_port_naa(nexus),
                    Some("NULL"),
                ));
                steps.push(link_lun);
            }
            FabricModule::Qla2xxx => {
                steps.push(link_lun);
                for &initiator in &self.initiators {
                    let acl = tpg.join("acls").join(format_port_colon(initiator));
                    let mapped = acl.join("lun_0");
                    steps.push(mkdir(acl, true));
                    steps.push(mkdir(mapped.clone(), true));
                    steps.push(Step::Symlink {
                        target: lun.clone(),
                        link: mapped.join("lun_0"),
                    });
                }
                steps.push(write(tpg.join("enable"), "1", Some("0")));
            }
        }
        steps
    }
}

/// The configfs directory of a fabric module (`target/<name>`).
pub fn fabric_dir(fabric: FabricModule) -> &'static str {
    match fabric {
        FabricModule::Loopback => "loopback",
        FabricModule::Qla2xxx => "qla2xxx",
    }
}

/// The kernel module behind a fabric.
pub fn fabric_kernel_module(fabric: FabricModule) -> &'static str {
    match fabric {
        FabricModule::Loopback => "tcm_loop",
        FabricModule::Qla2xxx => "tcm_qla2xxx",
    }
}

fn mkdir(path: PathBuf, remove: bool) -> Step {
    Step::Mkdir { path, remove }
}

fn write(path: PathBuf, value: impl Into<String>, undo: Option<&str>) -> Step {
    Step::Write {
        path,
        value: value.into(),
        undo: undo.map(str::to_owned),
    }
}
