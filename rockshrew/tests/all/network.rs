//! `--network` against what the source states: the magic of block files' records, the chain a
//! node names in `getblockchaininfo`, and blocks that only another network admits. A mismatch
//! stops the daemon at once with the network found and the flag to pass: asking the source
//! again cannot cure it.

use crate::common;

use std::path::Path;
use std::time::Duration;

use chaingen::blk::{BlkWriter, REGTEST_MAGIC};
use common::{Daemon, FakeNode};
use metashrew_tests::guests;

const WAIT: Duration = Duration::from_secs(120);

/// The real regtest chain 0..=206 of the fixtures.
fn regtest_blocks() -> Vec<Vec<u8>> {
    std::fs::read_to_string(metashrew_tests::fixtures::REGTEST_0_206_PATH)
        .unwrap()
        .lines()
        .map(|l| hex::decode(l).unwrap())
        .collect()
}

/// Waits for the daemon to exit; its exit code and log.
fn refused(mut d: Daemon) -> (Option<i32>, String) {
    let code = d.wait_exit(WAIT);
    (code, d.log_text())
}

/// Starts a daemon over `args` and waits until it has indexed `height`.
fn indexes(db: &Path, args: &[&str], height: u32) {
    let mut d = Daemon::start(guests::MINIMAL, db, args);
    d.wait_for_height(height, WAIT);
}

#[test]
fn a_regtest_block_directory_is_refused_at_start_without_network_regtest() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("blocks");
    let mut out = BlkWriter::create(&files, REGTEST_MAGIC, None, 1 << 20).unwrap();
    for block in regtest_blocks() {
        out.write(&block).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let files_arg = files.to_str().unwrap();

    for extra in [&[][..], &["--network", "signet"][..]] {
        let mut args = vec!["--blocks-file", files_arg, "--start-block", "100"];
        args.extend(extra);
        let flag = extra.get(1).copied().unwrap_or("main");
        let d = Daemon::start(guests::MINIMAL, &dir.path().join(flag), &args);
        let (code, log) = refused(d);
        assert_eq!(code, Some(1), "{log}");
        let expected = format!(
            "the block files in {files_arg} are of regtest (record magic fabfb5da), not of {flag} (--network {flag}): pass --network regtest"
        );
        assert!(log.contains(&expected), "{log}");
        assert!(!log.contains("asking the source again"), "{log}");
    }

    indexes(
        &dir.path().join("regtest"),
        &["--network", "regtest", "--blocks-file", files_arg],
        206,
    );
}

#[test]
fn a_node_of_another_network_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = FakeNode::start(regtest_blocks());
    node.set_network("regtest");
    let url = node.url();
    let d = Daemon::start(
        guests::MINIMAL,
        &dir.path().join("main"),
        &["--daemon-rpc-url", &url],
    );
    let (code, log) = refused(d);
    assert_eq!(code, Some(1), "{log}");
    let expected = format!(
        "the node at {url} follows regtest, not of main (--network main): pass --network regtest"
    );
    assert!(log.contains(&expected), "{log}");
    assert!(
        !log.contains("is refused"),
        "no block was asked for:\n{log}"
    );

    indexes(
        &dir.path().join("regtest"),
        &["--daemon-rpc-url", &url, "--network", "regtest"],
        206,
    );
}

#[test]
fn blocks_only_another_network_admits_stop_the_daemon_with_the_flag_to_pass() {
    // A hex file states no network: the first block checked tells.
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        guests::MINIMAL,
        &dir.path().join("main"),
        &[
            "--blocks-file",
            metashrew_tests::fixtures::REGTEST_0_206_PATH,
        ],
    );
    let (code, log) = refused(d);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(
            "block 0 has nBits 0x207fffff: it is of regtest, not of main (--network main): pass --network regtest"
        ),
        "{log}"
    );
    assert!(!log.contains("asking the source again"), "{log}");
}
