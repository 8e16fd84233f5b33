//! An in-memory configfs with the rules LIO's objects follow, for tests: directories need their
//! parent, creating an object adds its attribute files and default groups, `rmdir` refuses
//! while user-made children or links remain, attributes can only be written if they exist,
//! and `tcm_loop`'s nexus refuses a second nexus and reads ENODEV when unset. Every
//! successful operation is logged.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::configfs::Configfs;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A directory; `made` if created by mkdir (not a default group).
    Dir { made: bool },
    /// An attribute.
    Attr(String),
    /// A symbolic link.
    Link(PathBuf),
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<PathBuf, Node>,
    log: Vec<String>,
    fail: Option<String>,
}

/// The fake tree.
#[derive(Default)]
pub struct FakeConfigfs {
    state: Mutex<State>,
}

fn err(kind: io::ErrorKind) -> io::Error {
    io::Error::from(kind)
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

impl FakeConfigfs {
    /// A tree with `root/target/core` (LIO loaded) and the fabric directories.
    pub fn new(root: &Path) -> Self {
        let fs = Self::default();
        {
            let mut st = fs.state.lock().unwrap();
            for dir in ["", "target", "target/core"] {
                st.nodes.insert(root.join(dir), Node::Dir { made: false });
            }
        }
        fs
    }

    /// The operations performed so far (and clears the log).
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().log)
    }

    /// Makes every later operation on a path ending with `suffix` fail with EIO.
    pub fn fail_on(&self, suffix: &str) {
        self.state.lock().unwrap().fail = Some(suffix.to_owned());
    }

    /// An attribute's value, if it exists.
    pub fn attr(&self, path: &Path) -> Option<String> {
        match self.state.lock().unwrap().nodes.get(path) {
            Some(Node::Attr(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// Every path in the tree.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state.lock().unwrap().nodes.keys().cloned().collect()
    }

    fn check_fail(st: &State, path: &Path) -> io::Result<()> {
        match &st.fail {
            Some(s) if path.to_string_lossy().ends_with(s.as_str()) => Err(errno(nix::libc::EIO)),
            _ => Ok(()),
        }
    }

    /// The attributes and default groups configfs creates with an object.
    fn defaults(path: &Path) -> Vec<(&'static str, Node)> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = path
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let attr = |v: &str| Node::Attr(v.to_owned());
        let group = Node::Dir { made: false };
        if parent.starts_with("user_") {
            vec![
                ("control", attr("")),
                ("enable", attr("0")),
                ("attrib", group.clone()),
                ("attrib/tmr_notification", attr("0")),
                ("action", group),
                ("action/block_dev", attr("unblocked")),
                ("action/reset_ring", attr("")),
            ]
        } else if name.starts_with("tpgt_") {
            vec![
                ("lun", group.clone()),
                ("acls", group.clone()),
                ("attrib", group),
                ("attrib/generate_node_acls", attr("0")),
                ("nexus", attr("")),
                ("enable", attr("0")),
            ]
        } else {
            Vec::new()
        }
    }
}

impl Configfs for FakeConfigfs {
    fn exists(&self, path: &Path) -> bool {
        self.state.lock().unwrap().nodes.contains_key(path)
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        Self::check_fail(&st, path)?;
        if st.nodes.contains_key(path) {
            return Err(err(io::ErrorKind::AlreadyExists));
        }
        match path.parent().and_then(|p| st.nodes.get(p)) {
            Some(Node::Dir { .. }) => {}
            _ => return Err(err(io::ErrorKind::NotFound)),
        }
        st.nodes
            .insert(path.to_path_buf(), Node::Dir { made: true });
        for (rel, node) in Self::defaults(path) {
            st.nodes.insert(path.join(rel), node);
        }
        st.log.push(format!("mkdir {}", path.display()));
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        Self::check_fail(&st, path)?;
        match st.nodes.get(path) {
            Some(Node::Dir { made: true }) => {}
            Some(_) => return Err(errno(nix::libc::EPERM)),
            None => return Err(err(io::ErrorKind::NotFound)),
        }
        let below: Vec<PathBuf> = st
            .nodes
            .range(path.to_path_buf()..)
            .map(|(p, _)| p.clone())
            .take_while(|p| p.starts_with(path))
            .filter(|p| p != path)
            .collect();
        let busy = below.iter().any(|p| {
            matches!(
                st.nodes.get(p),
                Some(Node::Dir { made: true } | Node::Link(_))
            )
        });
        if busy {
            return Err(errno(nix::libc::ENOTEMPTY));
        }
        for p in below {
            st.nodes.remove(&p);
        }
        st.nodes.remove(path);
        st.log.push(format!("rmdir {}", path.display()));
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        let st = self.state.lock().unwrap();
        match st.nodes.get(path) {
            Some(Node::Attr(v)) if v.is_empty() && path.ends_with("nexus") => {
                Err(errno(nix::libc::ENODEV))
            }
            Some(Node::Attr(v)) => Ok(format!("{v}\n")),
            Some(_) => Err(errno(nix::libc::EISDIR)),
            None => Err(err(io::ErrorKind::NotFound)),
        }
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        Self::check_fail(&st, path)?;
        let current = match st.nodes.get(path) {
            Some(Node::Attr(v)) => v.clone(),
            Some(_) => return Err(errno(nix::libc::EISDIR)),
            None => return Err(err(io::ErrorKind::NotFound)),
        };
        let new = if path.ends_with("nexus") {
            match (current.is_empty(), value) {
                (true, "NULL") => return Err(errno(nix::libc::ENODEV)),
                (false, "NULL") => String::new(),
                (false, _) => return Err(errno(nix::libc::EEXIST)),
                (true, v) => v.to_owned(),
            }
        } else if path.ends_with("block_dev") {
            if value == "1" { "blocked" } else { "unblocked" }.to_owned()
        } else {
            value.to_owned()
        };
        st.nodes.insert(path.to_path_buf(), Node::Attr(new));
        st.log.push(format!("write {} = {value}", path.display()));
        Ok(())
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        Self::check_fail(&st, link)?;
        if !st.nodes.contains_key(target) {
            return Err(err(io::ErrorKind::NotFound));
        }
        if st.nodes.contains_key(link) {
            return Err(err(io::ErrorKind::AlreadyExists));
        }
        match link.parent().and_then(|p| st.nodes.get(p)) {
            Some(Node::Dir { .. }) => {}
            _ => return Err(err(io::ErrorKind::NotFound)),
        }
        st.nodes
            .insert(link.to_path_buf(), Node::Link(target.to_path_buf()));
        st.log
            .push(format!("ln -s {} {}", target.display(), link.display()));
        Ok(())
    }

    fn unlink(&self, link: &Path) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        Self::check_fail(&st, link)?;
        match st.nodes.get(link) {
            Some(Node::Link(_)) => {}
            Some(_) => return Err(errno(nix::libc::EISDIR)),
            None => return Err(err(io::ErrorKind::NotFound)),
        }
        st.nodes.remove(link);
        st.log.push(format!("rm {}", link.display()));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state.lock().unwrap();
        match st.nodes.get(dir) {
            Some(Node::Dir { .. }) => {}
            Some(_) => return Err(errno(nix::libc::ENOTDIR)),
            None => return Err(err(io::ErrorKind::NotFound)),
        }
        Ok(st
            .nodes
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }
}
