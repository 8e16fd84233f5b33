//! Applying and undoing plan steps on a configfs tree.

use std::io::{self, Write};
use std::path::Path;

use super::Step;
use super::setup::LioError;

/// The file operations LIO configuration needs. [`SystemConfigfs`] does them on the real
/// filesystem; tests use an in-memory tree with configfs's rules.
pub trait Configfs: Send + Sync {
    /// Whether `path` exists (a link counts, whatever it points to).
    fn exists(&self, path: &Path) -> bool;
    /// Creates the directory `path` (its parent must exist).
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes the directory `path` (configfs removes its attributes with it).
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// Reads an attribute.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes an attribute in one `write` call (configfs parses each write whole).
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Creates the symbolic link `link` to `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Removes the symbolic link `link`.
    fn unlink(&self, link: &Path) -> io::Result<()>;
    /// The names of the entries of directory `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
}

/// configfs as mounted on this system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemConfigfs;

impl Configfs for SystemConfigfs {
    fn exists(&self, path: &Path) -> bool {
        path.symlink_metadata().is_ok()
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        let n = file.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write ({n} of {} bytes)", value.len()),
            ));
        }
        Ok(())
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn unlink(&self, link: &Path) -> io::Result<()> {
        std::fs::remove_file(link)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

/// Applies `steps` in order, skipping what is already in place (an existing directory or
/// link, an attribute that already reads back as the value), and appends each step it
/// performed to `done`, so that [`undo`]ing `done` removes exactly what this call created.
/// Stops at the first failure.
pub fn apply(fs: &dyn Configfs, steps: &[Step], done: &mut Vec<Step>) -> Result<(), LioError> {
    for step in steps {
        match step {
            Step::Mkdir { path, .. } => {
                if fs.exists(path) {
                    continue;
                }
                fs.mkdir(path)
                    .map_err(|e| LioError::step("mkdir", path, e))?;
            }
            Step::Write { path, value, .. } => {
                let current = fs.read(path).ok();
                if current.as_deref().map(str::trim_end) == Some(value.as_str()) {
                    continue;
                }
                fs.write(path, value)
                    .map_err(|e| LioError::step("write", path, e).value(value))?;
            }
            Step::Symlink { target, link } => {
                if fs.exists(link) {
                    continue;
                }
                fs.symlink(target, link)
                    .map_err(|e| LioError::step("symlink", link, e))?;
            }
        }
        done.push(step.clone());
    }
    Ok(())
}

/// Undoes `steps` in reverse order: removes links and directories, writes back the `undo`
/// values. Best effort: what is already gone is fine, every other failure is returned (and
/// the rest is still undone).
pub fn undo(fs: &dyn Configfs, steps: &[Step]) -> Vec<LioError> {
    let mut errors = Vec::new();
    for step in steps.iter().rev() {
        let result = match step {
            Step::Mkdir { path, remove: true } => {
                fs.rmdir(path).map_err(|e| LioError::step("rmdir", path, e))
            }
            Step::Symlink { link, .. } => fs
                .unlink(link)
                .map_err(|e| LioError::step("unlink", link, e)),
            Step::Write {
                path,
                undo: Some(value),
                ..
            } => fs
                .write(path, value)
                .map_err(|e| LioError::step("write", path, e).value(value)),
            _ => Ok(()),
        };
        if let Err(e) = result
            && !e.is_gone()
        {
            errors.push(e);
        }
    }
    errors
}
