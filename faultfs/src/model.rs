//! The file system's state and its operations, with no FUSE in them: the namespace and file
//! contents as the running programs see them, what of them is durable, and the faults.
//!
//! Every write, create, rename, unlink and truncation changes only the *current* state. A
//! file's data becomes durable when the file is synced (`fsync`/`fdatasync`): it is written to
//! its backing file ([`crate::durable`]). A directory's entries become durable when the
//! directory is synced: the durable namespace then takes that directory's current entries. A
//! power cut ([`Model::cut_power`]) refuses every operation until the model is loaded again from
//! the durable image ([`Model::load`]): what was not synced is gone, exactly as LazyFS and
//! RocksDB's fault-injection file system model it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

use crate::durable::{Durable, DurableNamespace};
use crate::faults::{Faults, Op};

/// An errno the file system answers with.
pub type Errno = i32;

/// The root directory's inode number.
pub const ROOT: u64 = 1;

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A Unix socket's name (`bind`): never durable, as sockets do not outlive a restart.
    Socket,
}

/// What `stat` says of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Its inode number.
    pub ino: u64,
    /// File or directory.
    pub kind: Kind,
    /// Its size in bytes (0 for a directory).
    pub size: u64,
    /// Its permission bits.
    pub perm: u16,
    /// Last change of its content.
    pub mtime: SystemTime,
}

#[derive(Debug)]
struct FileNode {
    /// The current content; `None` until first read or written (then loaded from the durable
    /// image).
    content: Option<Vec<u8>>,
    /// The current length (known without loading the content).
    len: u64,
    /// The lowest offset changed since the last sync (`None`: nothing to sync).
    dirty_from: Option<u64>,
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(BTreeMap<String, u64>),
    Socket,
}

impl Node {
    fn kind(&self) -> Kind {
        match self {
            Node::File(_) => Kind::File,
            Node::Dir(_) => Kind::Dir,
            Node::Socket => Kind::Socket,
        }
    }
}

#[derive(Debug)]
struct Inode {
    node: Node,
    perm: u16,
    mtime: SystemTime,
    /// The last name it was reached by, for fault rules.
    name: String,
}

/// The file system's state.
pub struct Model {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    durable: Durable,
    namespace: DurableNamespace,
    /// The faults to inject.
    pub faults: Faults,
    powered: bool,
}

fn name_of(name: &std::ffi::OsStr) -> Result<String, Errno> {
    name.to_str().map(str::to_string).ok_or(libc::EINVAL)
}

impl Model {
    /// The state of the durable image in `backing` (created empty if it holds none): what a
    /// machine finds after it restarts.
    pub fn load(backing: &Path) -> std::io::Result<Self> {
        let durable = Durable::open(backing)?;
        let namespace = durable.namespace()?;
        let now = SystemTime::now();
        let mut inodes = HashMap::new();
        for (ino, kind) in &namespace.kinds {
            let node = match kind {
                Kind::Dir => Node::Dir(namespace.dirs.get(ino).cloned().unwrap_or_default()),
                Kind::File => Node::File(FileNode {
                    content: None,
                    len: durable.len(*ino)?,
                    dirty_from: None,
                }),
                Kind::Socket => Node::Socket,
            };
            let perm = if *kind == Kind::Dir { 0o755 } else { 0o644 };
            inodes.insert(
                *ino,
                Inode {
                    node,
                    perm,
                    mtime: now,
                    name: String::new(),
                },
            );
        }
        // Names, for fault rules.
        for entries in namespace.dirs.values() {
            for (name, ino) in entries {
                if let Some(inode) = inodes.get_mut(ino) {
                    inode.name = name.clone();
                }
            }
        }
        durable.forget_all_but(namespace.kinds.keys().copied())?;
        Ok(Self {
            next_ino: namespace.next_ino,
            inodes,
            durable,
            namespace,
            faults: Faults::default(),
            powered: true,
        })
    }

    /// Cuts the power: from now on every operation fails with EIO; what was not synced is lost
    /// at the next [`Model::load`].
    pub fn cut_power(&mut self) {
        self.powered = false;
    }

    /// Whether the power is on.
    pub fn powered(&self) -> bool {
        self.powered
    }

    fn check(&mut self, op: Op, ino: u64) -> Result<(), Errno> {
        if !self.powered {
            return Err(libc::EIO);
        }
        let name = self.inodes.get(&ino).map_or("", |i| i.name.as_str());
        if self.faults.take(op, name) {
            return Err(libc::EIO);
        }
        Ok(())
    }

    fn inode(&self, ino: u64) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&BTreeMap<String, u64>, Errno> {
        match &self.inode(ino)?.node {
            Node::Dir(entries) => Ok(entries),
            _ => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<String, u64>, Errno> {
        match &mut self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?.node {
            Node::Dir(entries) => Ok(entries),
            _ => Err(libc::ENOTDIR),
        }
    }

    /// `stat` of an inode.
    pub fn attr(&self, ino: u64) -> Result<Attr, Errno> {
        let inode = self.inode(ino)?;
        let size = match &inode.node {
            Node::File(f) => f.len,
            _ => 0,
        };
        let kind = inode.node.kind();
        Ok(Attr {
            ino,
            kind,
            size,
            perm: inode.perm,
            mtime: inode.mtime,
        })
    }

    /// The inode `name` names in the directory `parent`.
    pub fn lookup(&mut self, parent: u64, name: &std::ffi::OsStr) -> Result<Attr, Errno> {
        self.check(Op::Meta, parent)?;
        let name = name_of(name)?;
        let ino = *self.dir(parent)?.get(&name).ok_or(libc::ENOENT)?;
        self.attr(ino)
    }

    fn add(
        &mut self,
        parent: u64,
        name: &std::ffi::OsStr,
        node: Node,
        perm: u16,
    ) -> Result<Attr, Errno> {
        self.check(Op::Meta, parent)?;
        let name = name_of(name)?;
        if self.dir(parent)?.contains_key(&name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                node,
                perm,
                mtime: SystemTime::now(),
                name: name.clone(),
            },
        );
        self.dir_mut(parent)?.insert(name, ino);
        self.attr(ino)
    }

    /// Creates an empty file.
    pub fn create(
        &mut self,
        parent: u64,
        name: &std::ffi::OsStr,
        perm: u16,
    ) -> Result<Attr, Errno> {
        let file = FileNode {
            content: Some(Vec::new()),
            len: 0,
            dirty_from: Some(0),
        };
        self.add(parent, name, Node::File(file), perm)
    }

    /// Creates a Unix socket's name.
    pub fn mksocket(
        &mut self,
        parent: u64,
        name: &std::ffi::OsStr,
        perm: u16,
    ) -> Result<Attr, Errno> {
        self.add(parent, name, Node::Socket, perm)
    }

    /// Creates an empty directory.
    pub fn mkdir(&mut self, parent: u64, name: &std::ffi::OsStr, perm: u16) -> Result<Attr, Errno> {
        self.add(parent, name, Node::Dir(BTreeMap::new()), perm)
    }

    /// Removes a file's entry (`unlink`) or an empty directory's (`rmdir`).
    pub fn remove(&mut self, parent: u64, name: &std::ffi::OsStr, dir: bool) -> Result<(), Errno> {
        self.check(Op::Meta, parent)?;
        let name = name_of(name)?;
        let ino = *self.dir(parent)?.get(&name).ok_or(libc::ENOENT)?;
        match (&self.inode(ino)?.node, dir) {
            (Node::Dir(entries), true) if !entries.is_empty() => return Err(libc::ENOTEMPTY),
            (Node::Dir(_), false) => return Err(libc::EISDIR),
            (Node::File(_) | Node::Socket, true) => return Err(libc::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.remove(&name);
        Ok(())
    }

    /// Moves an entry, replacing what the new name named (not a non-empty directory; nothing
    /// at all with `no_replace`).
    pub fn rename(
        &mut self,
        parent: u64,
        name: &std::ffi::OsStr,
        new_parent: u64,
        new_name: &std::ffi::OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        self.check(Op::Meta, parent)?;
        let (name, new_name) = (name_of(name)?, name_of(new_name)?);
        let ino = *self.dir(parent)?.get(&name).ok_or(libc::ENOENT)?;
        self.dir(new_parent)?;
        if let Some(&old) = self.dir(new_parent)?.get(&new_name) {
            if no_replace {
                return Err(libc::EEXIST);
            }
            if let Node::Dir(entries) = &self.inode(old)?.node
                && !entries.is_empty()
            {
                return Err(libc::ENOTEMPTY);
            }
        }
        self.dir_mut(parent)?.remove(&name);
        self.dir_mut(new_parent)?.insert(new_name.clone(), ino);
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.name = new_name;
        }
        Ok(())
    }

    /// The entries of a directory, in name order.
    pub fn entries(&mut self, ino: u64) -> Result<Vec<(String, u64, Kind)>, Errno> {
        self.check(Op::Meta, ino)?;
        let entries = self.dir(ino)?;
        Ok(entries
            .iter()
            .map(|(name, child)| {
                let kind = self.inodes.get(child).map_or(Kind::File, |i| i.node.kind());
                (name.clone(), *child, kind)
            })
            .collect())
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileNode, Errno> {
        let durable = &self.durable;
        match &mut self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?.node {
            Node::File(file) => {
                if file.content.is_none() {
                    let mut content = durable.read(ino).map_err(|_| libc::EIO)?;
                    content.resize(file.len as usize, 0);
                    file.content = Some(content);
                }
                Ok(file)
            }
            Node::Dir(_) => Err(libc::EISDIR),
            Node::Socket => Err(libc::ENXIO),
        }
    }

    /// Reads up to `size` bytes at `offset`.
    pub fn read(&mut self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        self.check(Op::Read, ino)?;
        let file = self.file_mut(ino)?;
        let content = file.content.as_deref().unwrap_or_default();
        let start = (offset as usize).min(content.len());
        let end = start.saturating_add(size as usize).min(content.len());
        Ok(content[start..end].to_vec())
    }

    /// Bytes every file holds now, together.
    pub fn used(&self) -> u64 {
        self.inodes
            .values()
            .map(|i| match &i.node {
                Node::File(f) => f.len,
                _ => 0,
            })
            .sum()
    }

    /// Sets a file's length to `len` (zeros when it grows).
    pub fn truncate(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        self.check(Op::Write, ino)?;
        let current = self.attr(ino)?.size;
        if len > current && !self.faults.room_for(self.used(), len - current) {
            return Err(libc::ENOSPC);
        }
        let file = self.file_mut(ino)?;
        if let Some(content) = file.content.as_mut() {
            content.resize(len as usize, 0);
        }
        file.len = len;
        file.dirty_from = Some(file.dirty_from.map_or(len, |d| d.min(len)));
        self.touch(ino);
        Ok(())
    }

    fn touch(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.mtime = SystemTime::now();
        }
    }

    /// Writes `data` at `offset`.
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.check(Op::Write, ino)?;
        let end = offset + data.len() as u64;
        let current = self.attr(ino)?.size;
        if end > current && !self.faults.room_for(self.used(), end - current) {
            return Err(libc::ENOSPC);
        }
        let file = self.file_mut(ino)?;
        let content = file.content.get_or_insert_with(Vec::new);
        if content.len() < end as usize {
            content.resize(end as usize, 0);
        }
        content[offset as usize..end as usize].copy_from_slice(data);
        file.len = content.len() as u64;
        file.dirty_from = Some(file.dirty_from.map_or(offset, |d| d.min(offset)));
        self.touch(ino);
        Ok(data.len() as u32)
    }

    /// `fsync` of a file (its data becomes durable) or a directory (its entries do).
    pub fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        self.check(Op::Sync, ino)?;
        if let Ok(entries) = self.dir(ino) {
            let mut entries = entries.clone();
            entries.retain(|_, child| {
                self.inodes
                    .get(child)
                    .is_some_and(|i| i.node.kind() != Kind::Socket)
            });
            for child in entries.values() {
                let kind = self.inodes.get(child).map_or(Kind::File, |i| i.node.kind());
                self.namespace.kinds.insert(*child, kind);
                if kind == Kind::Dir {
                    self.namespace.dirs.entry(*child).or_default();
                }
            }
            self.namespace.dirs.insert(ino, entries);
            self.namespace.next_ino = self.next_ino;
            return self
                .durable
                .write_namespace(&self.namespace)
                .map_err(|_| libc::EIO);
        }
        let durable = self.durable.dir().to_path_buf();
        let file = self.file_mut(ino)?;
        if let Some(from) = file.dirty_from {
            let content = file.content.as_deref().unwrap_or_default();
            Durable::write_file(&durable, ino, content, from).map_err(|_| libc::EIO)?;
            file.dirty_from = None;
        }
        Ok(())
    }

    /// Space left under the byte budget, and in all, for `statfs`: (total, free).
    pub fn space(&self) -> (u64, u64) {
        let total = self.faults.budget().unwrap_or(1 << 40);
        (total, total.saturating_sub(self.used()))
    }

    /// Checks an `open` (or `fallocate`) of `ino` against the power and the faults.
    pub fn open(&mut self, ino: u64) -> Result<(), Errno> {
        self.check(Op::Meta, ino)?;
        self.inode(ino).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn names(model: &mut Model, dir: u64) -> Vec<String> {
        model
            .entries(dir)
            .unwrap()
            .into_iter()
            .map(|(n, _, _)| n)
            .collect()
    }

    #[test]
    fn synced_data_and_entries_survive_a_power_cut_and_unsynced_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::load(dir.path()).unwrap();
        let kept = model.create(ROOT, name("kept"), 0o644).unwrap().ino;
        model.write(kept, 0, b"synced").unwrap();
        model.sync(kept).unwrap();
        model.sync(ROOT).unwrap();
        model.write(kept, 6, b" and not").unwrap();
        let lost = model.create(ROOT, name("lost"), 0o644).unwrap().ino;
        model.write(lost, 0, b"never synced").unwrap();
        // Synced data, but an entry whose directory was never synced after it.
        let orphan = model.create(ROOT, name("orphan"), 0o644).unwrap().ino;
        model.write(orphan, 0, b"data synced").unwrap();
        model.sync(orphan).unwrap();

        model.cut_power();
        assert_eq!(model.read(kept, 0, 100), Err(libc::EIO), "refused once cut");
        assert_eq!(
            model.create(ROOT, name("x"), 0o644).map(|_| ()),
            Err(libc::EIO)
        );

        let mut after = Model::load(dir.path()).unwrap();
        assert_eq!(names(&mut after, ROOT), ["kept"]);
        let kept = after.lookup(ROOT, name("kept")).unwrap().ino;
        assert_eq!(after.read(kept, 0, 100).unwrap(), b"synced");
        assert_eq!(after.lookup(ROOT, name("orphan")), Err(libc::ENOENT));
    }

    #[test]
    fn a_rename_or_unlink_without_a_directory_sync_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::load(dir.path()).unwrap();
        let sub = model.mkdir(ROOT, name("db"), 0o755).unwrap().ino;
        let file = model.create(sub, name("CURRENT.tmp"), 0o644).unwrap().ino;
        model.write(file, 0, b"MANIFEST-1").unwrap();
        model.sync(file).unwrap();
        model.sync(sub).unwrap();
        model.sync(ROOT).unwrap();
        let gone = model.create(sub, name("old.log"), 0o644).unwrap().ino;
        model.sync(gone).unwrap();
        model.sync(sub).unwrap();

        model
            .rename(sub, name("CURRENT.tmp"), sub, name("CURRENT"), false)
            .unwrap();
        model.remove(sub, name("old.log"), false).unwrap();
        assert_eq!(names(&mut model, sub), ["CURRENT"]);
        model.cut_power();
        let mut after = Model::load(dir.path()).unwrap();
        assert_eq!(names(&mut after, sub), ["CURRENT.tmp", "old.log"]);

        // The same with the directory synced: kept.
        after
            .rename(sub, name("CURRENT.tmp"), sub, name("CURRENT"), false)
            .unwrap();
        after.sync(sub).unwrap();
        after.cut_power();
        let mut again = Model::load(dir.path()).unwrap();
        assert_eq!(names(&mut again, sub), ["CURRENT", "old.log"]);
        let current = again.lookup(sub, name("CURRENT")).unwrap().ino;
        assert_eq!(again.read(current, 0, 100).unwrap(), b"MANIFEST-1");
    }

    #[test]
    fn a_truncation_synced_is_durable_and_appends_after_it_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::load(dir.path()).unwrap();
        let log = model.create(ROOT, name("wal"), 0o644).unwrap().ino;
        model.sync(ROOT).unwrap();
        model.write(log, 0, b"0123456789").unwrap();
        model.sync(log).unwrap();
        model.truncate(log, 4).unwrap();
        model.write(log, 4, b"ab").unwrap();
        model.sync(log).unwrap();
        model.write(log, 6, b"unsynced").unwrap();
        model.cut_power();
        let mut after = Model::load(dir.path()).unwrap();
        assert_eq!(after.read(log, 0, 100).unwrap(), b"0123ab");
    }

    #[test]
    fn faults_fail_the_named_operations_and_the_budget_fails_writes_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::load(dir.path()).unwrap();
        let sst = model.create(ROOT, name("000012.sst"), 0o644).unwrap().ino;
        let log = model.create(ROOT, name("000013.log"), 0o644).unwrap().ino;
        model.write(sst, 0, b"table").unwrap();
        model.faults.fail_next(Op::Read, ".sst", 2);
        assert_eq!(model.read(sst, 0, 5), Err(libc::EIO));
        assert_eq!(model.read(sst, 0, 5), Err(libc::EIO));
        assert_eq!(model.read(sst, 0, 5).unwrap(), b"table", "two, then none");
        model.faults.fail_next(Op::Sync, ".log", 1);
        assert_eq!(model.sync(sst), Ok(()), "another file");
        assert_eq!(model.sync(log), Err(libc::EIO));
        assert_eq!(model.faults.injected, 3);

        model.faults.set_budget(Some(8));
        assert_eq!(model.write(log, 0, b"abc"), Ok(3));
        assert_eq!(model.write(log, 3, b"d"), Err(libc::ENOSPC), "5 + 4 > 8");
        assert_eq!(
            model.write(log, 0, b"xyz"),
            Ok(3),
            "overwriting takes no room"
        );
        assert_eq!(model.truncate(log, 10), Err(libc::ENOSPC));
        model.faults.set_budget(None);
        assert_eq!(model.write(log, 3, b"d"), Ok(1));
    }
}
