//! The plan as shell commands (`fcvpn up --print-lio`), for administrators who manage LIO
//! themselves.

use std::fmt::Write;
use std::path::Path;

use super::{LioPaths, LioSpec, Step, fabric_kernel_module};

/// A shell script creating what `fcvpn up` creates for `spec`, with the teardown as comments.
pub fn script(spec: &LioSpec, paths: &LioPaths) -> String {
    let cfs = &paths.configfs;
    let mut s = String::new();
    let backstore = spec.backstore_steps(cfs);
    let export = spec.export_steps(cfs);
    let bs = spec.backstore_dir(cfs);
    let _ = writeln!(s, "#!/bin/sh");
    let _ = writeln!(
        s,
        "# The LIO configuration `fcvpn up` creates for backstore {} ({}).",
        spec.backstore,
        fabric_kernel_module(spec.fabric)
    );
    let _ = writeln!(
        s,
        "# fcvpn creates and removes all of this itself; these commands are for managing LIO by hand."
    );
    let _ = writeln!(s, "set -e");
    let _ = writeln!(
        s,
        "mountpoint -q {0} || mount -t configfs configfs {0}",
        quote(cfs)
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "# 1. The TCMU backstore; enabling it creates the UIO device named {}.",
        spec.uio_name()
    );
    for step in &backstore {
        let _ = writeln!(s, "{}", command(step));
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "# 2. Start `fcvpn up` now: linking the LUN below makes the kernel scan it, and the scan's"
    );
    let _ = writeln!(
        s,
        "#    INQUIRY waits for fcvpn to answer (it finds an enabled backstore and takes it over)."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "# 3. The target port, LUN 0 and who may use it.");
    for step in &export {
        let _ = writeln!(s, "{}", command(step));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "# Teardown, in this order:");
    let _ = writeln!(
        s,
        "#   echo 1 > {}   (LIO answers BUSY; stop fcvpn)",
        quote(&bs.join("action/block_dev"))
    );
    for step in export.iter().rev().filter_map(undo_command) {
        let _ = writeln!(s, "#   {step}");
    }
    for step in backstore.iter().rev().filter_map(undo_command) {
        let _ = writeln!(s, "#   {step}");
    }
    s
}

fn command(step: &Step) -> String {
    match step {
        Step::Mkdir { path, .. } => format!("mkdir -p {}", quote(path)),
        Step::Write { path, value, .. } => {
            format!("echo {} > {}", quote_str(value), quote(path))
        }
        Step::Symlink { target, link } => format!("ln -s {} {}", quote(target), quote(link)),
    }
}

fn undo_command(step: &Step) -> Option<String> {
    match step {
        Step::Mkdir { path, remove: true } => Some(format!("rmdir {}", quote(path))),
        Step::Mkdir { .. } => None,
        Step::Write {
            path,
            undo: Some(v),
            ..
        } => Some(format!("echo {} > {}", quote_str(v), quote(path))),
        Step::Write { .. } => None,
        Step::Symlink { link, .. } => Some(format!("rm {}", quote(link))),
    }
}

fn quote(path: &Path) -> String {
    quote_str(&path.to_string_lossy())
}

/// Single-quotes `s` unless it is made of characters the shell leaves alone.
fn quote_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=,+-".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_str("naa.5001405fc0000001"), "naa.5001405fc0000001");
        assert_eq!(quote_str("a b"), "'a b'");
        assert_eq!(quote_str("it's"), r"'it'\''s'");
        assert_eq!(quote_str(""), "''");
    }
}
