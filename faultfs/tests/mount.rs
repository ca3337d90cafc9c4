//! The file system mounted, used through the kernel as a program uses it (needs root and
//! `/dev/fuse`, which the project's test machines have).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::Write;

#[test]
fn through_the_kernel_synced_files_survive_a_power_cycle_and_faults_reach_programs() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let mut fs = faultfs::Mounted::mount(&dir.path().join("backing"), &mnt).unwrap();
    std::fs::create_dir(mnt.join("db")).unwrap();
    File::open(&mnt).unwrap().sync_all().unwrap();
    let mut kept = File::create(mnt.join("db/kept")).unwrap();
    kept.write_all(b"synced").unwrap();
    kept.sync_all().unwrap();
    File::open(mnt.join("db")).unwrap().sync_all().unwrap();
    kept.write_all(b" then lost").unwrap();
    drop(kept);
    std::fs::write(mnt.join("db/lost"), b"never synced").unwrap();
    std::fs::rename(mnt.join("db/kept"), mnt.join("db/renamed")).unwrap();
    assert_eq!(
        std::fs::read(mnt.join("db/renamed")).unwrap(),
        b"synced then lost"
    );

    let control = fs.control();
    control.cut_power();
    let err = std::fs::read(mnt.join("db/renamed")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    fs.power_cycle().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(mnt.join("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["kept"]);
    assert_eq!(std::fs::read(mnt.join("db/kept")).unwrap(), b"synced");

    // EIO on the next read of a matching file, then reads work again.
    control.fail_next(faultfs::Op::Read, "kept", 1);
    let err = std::fs::read(mnt.join("db/kept")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert_eq!(std::fs::read(mnt.join("db/kept")).unwrap(), b"synced");
    // ENOSPC past the budget.
    control.set_budget(Some(1 << 10));
    let err = std::fs::write(mnt.join("db/big"), vec![7u8; 4 << 10]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
}
