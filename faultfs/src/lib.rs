//! `faultfs`: a FUSE file system for tests that loses what was not synced when the power is
//! cut, and fails operations on command.
//!
//! It keeps the files' current content in memory and their durable content in a backing
//! directory ([`durable`]): a file's data is durable once the file is synced, a directory's
//! entries (creates, renames, unlinks in it) once the directory is synced. On command
//! ([`Control`]) it
//! - cuts the power: every operation fails with EIO until [`Mounted::power_cycle`] mounts it
//!   again from the durable image, which is all that is left;
//! - fails the next N reads, writes, syncs or metadata operations of files whose name contains
//!   a given string with EIO;
//! - fails writes past a byte budget with ENOSPC.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let dir = std::path::Path::new("/tmp/faultfs-example");
//! let mut fs = faultfs::Mounted::mount(&dir.join("backing"), &dir.join("mnt"))?;
//! std::fs::write(dir.join("mnt/unsynced"), b"lost")?;
//! fs.power_cycle()?; // the file is gone: neither it nor its directory was synced
//! # Ok(()) }
//! ```
//!
//! Limits: regular files, directories and Unix sockets' names only (no symlinks, xattrs or locks: the kernel keeps
//! POSIX locks itself; a hard link fails with EXDEV, so RocksDB's checkpoints copy files); every file's content a program touched is held in memory
//! (meant for test databases of up to a few hundred MB); one owner (uid 0); needs root and
//! `/dev/fuse`.

#![deny(missing_docs)]

pub mod durable;
pub mod faults;
mod fuse;
pub mod model;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use faults::Op;
pub use model::Model;

/// Commands to a mounted file system: usable from any thread while programs use it, and across
/// power cycles (it follows the mounted model).
#[derive(Clone)]
pub struct Control {
    current: Arc<Mutex<Arc<Mutex<Model>>>>,
}

impl Control {
    fn model(&self) -> Arc<Mutex<Model>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        let model = self.model();
        let mut guard: MutexGuard<'_, Model> = model.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Cuts the power: every operation fails with EIO from now on, until the file system is
    /// mounted again ([`Mounted::power_cycle`]).
    pub fn cut_power(&self) {
        self.with(Model::cut_power);
    }

    /// The next `count` operations `op` on files whose name contains `name` (`""`: any file)
    /// fail with EIO.
    pub fn fail_next(&self, op: Op, name: &str, count: u32) {
        self.with(|m| m.faults.fail_next(op, name, count));
    }

    /// Drops every [`Control::fail_next`] rule still pending.
    pub fn clear_faults(&self) {
        self.with(|m| m.faults.clear());
    }

    /// Bytes all files hold together now.
    pub fn used(&self) -> u64 {
        self.with(|m| m.used())
    }

    /// Writes past `bytes` held in all files together fail with ENOSPC (`None`: no budget).
    pub fn set_budget(&self, bytes: Option<u64>) {
        self.with(|m| m.faults.set_budget(bytes));
    }

    /// Operations failed by [`Control::fail_next`] rules so far.
    pub fn injected(&self) -> u64 {
        self.with(|m| m.faults.injected)
    }
}

/// A mounted fault file system; unmounted when dropped.
pub struct Mounted {
    control: Control,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
    backing: PathBuf,
}

fn session(
    model: &Arc<Mutex<Model>>,
    mountpoint: &Path,
) -> std::io::Result<fuser::BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("faultfs".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    fuser::spawn_mount(fuse::FaultFs::new(model.clone()), mountpoint, &config)
}

impl Mounted {
    /// Mounts at `mountpoint` (created if missing) the durable image in `backing` (created
    /// empty if missing).
    pub fn mount(backing: &Path, mountpoint: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(mountpoint)?;
        let model = Arc::new(Mutex::new(Model::load(backing)?));
        let session = session(&model, mountpoint)?;
        Ok(Self {
            control: Control {
                current: Arc::new(Mutex::new(model)),
            },
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
            backing: backing.to_path_buf(),
        })
    }

    /// Its command handle.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Cuts the power (if it is not cut already), unmounts, and mounts again from the durable
    /// image: the machine restarted. Files programs still hold open stay on the old mount,
    /// where every operation fails with EIO (the old mount goes when they close them).
    pub fn power_cycle(&mut self) -> std::io::Result<()> {
        self.control.cut_power();
        // A lazy unmount: the old session serves what is still open, with the power cut, and
        // its thread ends when the last of it is closed.
        detach(&self.mountpoint)?;
        drop(self.session.take());
        let model = Arc::new(Mutex::new(Model::load(&self.backing)?));
        *self
            .control
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = model.clone();
        self.session = Some(session(&model, &self.mountpoint)?);
        Ok(())
    }
}

/// Unmounts `mountpoint` lazily (`MNT_DETACH`): at once for new lookups, when the last open
/// file is closed for the rest.
fn detach(mountpoint: &Path) -> std::io::Result<()> {
    rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH)
        .map_err(std::io::Error::from)
}

impl Drop for Mounted {
    /// Unmounts lazily: files still open keep the session's thread until they are closed.
    fn drop(&mut self) {
        let _ = detach(&self.mountpoint);
        drop(self.session.take());
    }
}
